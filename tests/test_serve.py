"""``hybridml serve``: the batcher, the endpoints, concurrency, limits, SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from hybridml import load_model
from hybridml.baseline.saved import HybridModel, save_model

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from hybridml.serve import create_app, run
from hybridml.serve.batching import Batcher, BatchError
from hybridml.serve.metrics import Metrics

NO_GROUPS = dict(image=[], groups=None)


def _model(pipe, task, classes, roles, row, schema):
    """A hand-made HybridModel; with the per-column schema where it takes one."""
    return HybridModel(pipe, task, classes, roles, [], row, schema=schema)


# -- tiny hand-made models (no backbone), saved and loaded like a user's -------


@pytest.fixture(scope="module")
def regression_path(tmp_path_factory):
    """y = 2x + 1: every row's prediction differs from every other row's."""
    df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [1.0, 3.0, 5.0, 7.0]})
    cols = ColumnTransformer([("numeric", "passthrough", ["x"])])
    pipe = Pipeline([("features", cols), ("head", Ridge(alpha=1e-9))])
    pipe.fit(df[["x"]], df["y"])
    roles = dict(target="y", text=[], numeric=["x"], categorical=[], **NO_GROUPS)
    schema = {"x": {"role": "numeric", "kind": "number"}}
    model = _model(pipe, "regression", [], roles, {"head": "ols"}, schema)
    return save_model(model, tmp_path_factory.mktemp("reg") / "reg.hml")


@pytest.fixture(scope="module")
def classifier_path(tmp_path_factory):
    """Sentiment from a text, a number and a category (TF-IDF + logreg)."""
    rng = np.random.RandomState(0)
    words = {"pos": ["good", "great", "fun"], "neg": ["bad", "boring", "awful"]}
    rows = [
        {
            "review": f"a {rng.choice(words[label])} film",
            "stars": float(rng.normal(4 if label == "pos" else 2, 0.5)),
            "genre": rng.choice(["drama", "comedy"]),
            "label": label,
        }
        for label in ("neg", "pos")
        for _ in range(10)
    ]
    df = pd.DataFrame(rows)
    cols = ColumnTransformer(
        [
            ("text", TfidfVectorizer(), "review"),
            ("numeric", "passthrough", ["stars"]),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), ["genre"]),
        ]
    )
    pipe = Pipeline([("features", cols), ("head", LogisticRegression())])
    pipe.fit(df[["review", "stars", "genre"]], (df["label"] == "pos").astype(int))
    roles = dict(
        target="label", text=["review"], numeric=["stars"], categorical=["genre"],
        **NO_GROUPS,
    )  # fmt: skip
    row = {"features": "tfidf + tabular", "head": "logreg", "metric": "accuracy",
           "mean": 0.9, "std": 0.05}  # fmt: skip
    schema = {
        "review": {"role": "text", "kind": "text"},
        "stars": {"role": "numeric", "kind": "number"},
        "genre": {"role": "categorical", "kind": "string",
                  "levels": ["comedy", "drama"]},
    }  # fmt: skip
    model = _model(pipe, "classification", ["neg", "pos"], roles, row, schema)
    return save_model(model, tmp_path_factory.mktemp("clf") / "clf.hml")


@pytest.fixture
def regression(regression_path):
    return load_model(regression_path)


@pytest.fixture
def classifier(classifier_path):
    return load_model(classifier_path)


def _client(model, **options):
    return TestClient(create_app(model, **options))


# -- the batcher, without HTTP --------------------------------------------------


def _doubler(calls):
    def predict(groups, proba):
        rows = [x for group in groups for x in group]
        calls.append(len(rows))
        return [2 * x for x in rows]

    return predict


def _frame(*xs):
    return list(xs)


def test_batcher_gathers_queued_requests_up_to_max_batch_rows():
    calls = []
    batcher = Batcher(_doubler(calls), max_batch=4, max_wait_ms=200)
    futures = [batcher.submit(_frame(float(i))) for i in range(10)]
    batcher.start()  # everything is queued: the batches are 4, 4, then 2
    results = [f.result(timeout=10) for f in futures]
    batcher.stop()
    assert calls == [4, 4, 2]
    assert results == [[2.0 * i] for i in range(10)]


def test_batcher_never_splits_a_request_and_runs_a_large_one_alone():
    calls = []
    batcher = Batcher(_doubler(calls), max_batch=4, max_wait_ms=100)
    futures = [batcher.submit(_frame(*range(n))) for n in (3, 3, 5, 1)]
    batcher.start()
    results = [f.result(timeout=10) for f in futures]
    batcher.stop()
    assert calls == [3, 3, 5, 1]
    assert [len(r) for r in results] == [3, 3, 5, 1]


def test_batcher_waits_max_wait_for_company_but_not_once_the_batch_is_full():
    calls = []
    batcher = Batcher(_doubler(calls), max_batch=2, max_wait_ms=400)
    pair = [batcher.submit(_frame(1.0)), batcher.submit(_frame(2.0))]  # company
    batcher.start()
    [f.result(timeout=10) for f in pair]
    start = time.perf_counter()
    batcher.submit(_frame(1.0)).result(timeout=10)
    alone = time.perf_counter() - start
    batcher.max_wait_ms = 20_000
    start = time.perf_counter()
    pair = [batcher.submit(_frame(1.0)), batcher.submit(_frame(2.0))]
    [f.result(timeout=10) for f in pair]
    full = time.perf_counter() - start
    batcher.stop()
    assert alone >= 0.39  # waited the whole max_wait for a second request
    assert full < 5.0  # two rows fill max_batch=2: no 20 s wait
    assert calls == [2, 1, 2]


def test_batcher_runs_a_lone_client_at_once_and_waits_once_requests_overlap():
    """One client at a time gets no wait (batching on costs it nothing); the
    first time two requests are in the server at once, waiting resumes."""
    calls, gate = [], threading.Event()

    def predict(groups, proba):
        rows = [x for g in groups for x in g]
        calls.append(rows)
        if rows == [10.0]:
            gate.wait(10)
        return [2 * x for x in rows]

    batcher = Batcher(predict, max_batch=8, max_wait_ms=1_000).start()
    start = time.perf_counter()
    for i in range(5):  # a lone client: each request after the last answer
        assert batcher.submit(_frame(float(i))).result(timeout=10) == [2.0 * i]
    lone = time.perf_counter() - start
    first = batcher.submit(_frame(10.0))
    while calls[-1] != [10.0]:  # it runs at once, alone
        time.sleep(0.001)
    second = batcher.submit(_frame(11.0))  # two in flight: company
    gate.set()
    assert first.result(timeout=10) == [20.0]
    third = batcher.submit(_frame(12.0))  # comes back within the wait
    assert second.result(timeout=10) == [22.0] and third.result(timeout=10) == [24.0]
    batcher.stop()
    assert lone < 1.0  # five requests, none waited its 1 s for company
    assert calls == [[0.0], [1.0], [2.0], [3.0], [4.0], [10.0], [11.0, 12.0]]


def test_batcher_waits_for_company_after_a_batch_even_for_an_old_request():
    """Clients answered by one batch come back while the next waits: a request
    queued during a batch still waits max_wait from that batch's end, so the
    two groups of a steady load merge instead of alternating half-full."""
    calls, running = [], threading.Event()

    def slow(groups, proba):
        calls.append([x for g in groups for x in g])
        running.set()
        time.sleep(0.3)
        return [2 * x for g in groups for x in g]

    batcher = Batcher(slow, max_batch=8, max_wait_ms=400).start()
    first = batcher.submit(_frame(1.0))
    running.wait(10)  # the first batch runs (alone: no company yet)
    old = batcher.submit(_frame(2.0))  # queued during the batch
    first.result(timeout=10)
    time.sleep(0.1)  # a client answered by the first batch comes back
    late = batcher.submit(_frame(3.0))
    assert old.result(timeout=10) == [4.0] and late.result(timeout=10) == [6.0]
    batcher.stop()
    assert calls == [[1.0], [2.0, 3.0]]


def test_batcher_gives_each_request_exactly_its_own_rows():
    batcher = Batcher(_doubler([]), max_batch=64, max_wait_ms=50)
    sizes = [1, 4, 2, 7, 3]
    frames, start = [], 0
    for n in sizes:
        frames.append(_frame(*np.arange(start, start + n, dtype=float)))
        start += n
    futures = [batcher.submit(f) for f in frames]
    batcher.start()
    for frame, future in zip(frames, futures, strict=True):
        got = future.result(timeout=10)
        np.testing.assert_array_equal(got, np.asarray(frame) * 2)
    batcher.stop()


def _picky(calls):
    """Doubles; refuses negative rows (ValueError), falls over on 99."""

    def predict(groups, proba):
        rows = [x for group in groups for x in group]
        calls.append(rows)
        if any(x < 0 for x in rows):
            raise ValueError("x: got a negative value. Expected x >= 0. Fix it.")
        if 99 in rows:
            raise RuntimeError("the model fell over")
        return [2 * x for x in rows]

    return predict


def test_batcher_isolates_a_bad_request_and_fails_only_a_broken_batch(caplog):
    calls = []
    # company_s=inf: 99 waits for 3 however slow the machine
    batcher = Batcher(
        _picky(calls), max_batch=8, max_wait_ms=100, company_s=float("inf")
    )
    good, bad, good2 = (batcher.submit(_frame(x)) for x in (1.0, -1.0, 2.0))
    batcher.start()
    assert good.result(timeout=10) == [2.0]
    assert good2.result(timeout=10) == [4.0]
    with pytest.raises(ValueError, match="x: got a negative value"):
        bad.result(timeout=10)
    # no check: one call, then each request alone
    assert calls[:4] == [[1.0, -1.0, 2.0], [1.0], [-1.0], [2.0]]

    with caplog.at_level(logging.ERROR, logger="hybridml.serve"):
        broken = [batcher.submit(_frame(x)) for x in (99.0, 3.0)]
        errors = []
        for f in broken:
            with pytest.raises(BatchError, match="predict: got an internal error") as e:
                f.result(timeout=10)
            errors.append(e.value.error_id)
    assert len(set(errors)) == 1 and errors[0] in caplog.text
    assert "the model fell over" in caplog.text  # the traceback is logged
    # the worker is still there
    assert batcher.submit(_frame(5.0)).result(timeout=10) == [10.0]
    batcher.stop()


def test_batcher_check_finds_the_bad_request_without_a_model_call_each():
    calls = []
    predict = _picky(calls)

    def check(rows):
        if any(x < 0 for x in rows):
            raise ValueError(f"x: got {min(rows)} in this request. Expected x >= 0.")

    batcher = Batcher(predict, max_batch=8, max_wait_ms=100, check=check)
    futures = [batcher.submit(_frame(x)) for x in (1.0, -1.0, 2.0, -3.0, 4.0)]
    batcher.start()
    results = []
    for f in futures:
        try:
            results.append(f.result(timeout=10))
        except ValueError as exc:
            results.append(str(exc))
    batcher.stop()
    refused = "x: got {} in this request. Expected x >= 0."
    assert results == [[2.0], refused.format(-1.0), [4.0], refused.format(-3.0), [8.0]]
    # the bad batch, then the three good requests as one batch
    assert calls == [[1.0, -1.0, 2.0, -3.0, 4.0], [1.0, 2.0, 4.0]]


def test_batcher_stop_answers_queued_requests_then_refuses_new_ones():
    batcher = Batcher(_doubler([]), max_batch=64, max_wait_ms=60_000).start()
    futures = [batcher.submit(_frame(float(i))) for i in range(3)]
    batcher.stop(timeout=10)
    assert [f.result(timeout=0) for f in futures] == [[0.0], [2.0], [4.0]]
    with pytest.raises(RuntimeError, match="batcher: got a request after stop"):
        batcher.submit(_frame(1.0))


def test_batcher_refuses_a_predict_that_loses_rows(caplog):
    batcher = Batcher(lambda groups, proba: groups[0][:1], max_batch=8, max_wait_ms=50)
    future = batcher.submit(_frame(1.0, 2.0))
    with caplog.at_level(logging.ERROR, logger="hybridml.serve"):
        batcher.start()
        with pytest.raises(BatchError, match=r"internal error \(RuntimeError, id"):
            future.result(timeout=10)
        batcher.stop()
    assert "predict: got 1 results for 2 rows" in caplog.text


# -- the endpoints --------------------------------------------------------------


def test_predict_accepts_records_rows_and_one_object(regression):
    with _client(regression) as client:
        records = client.post("/predict", json=[{"x": 1.5}, {"x": 4}])
        rows = client.post("/predict", json=[[1.5], [4]])
        one = client.post("/predict", json={"x": 10, "extra": "ignored"})
    assert records.status_code == rows.status_code == one.status_code == 200
    np.testing.assert_allclose(records.json()["predictions"], [4.0, 9.0])
    np.testing.assert_allclose(rows.json()["predictions"], [4.0, 9.0])
    np.testing.assert_allclose(one.json()["predictions"], [21.0])


def test_predict_proba_matches_the_loaded_model(classifier):
    rows = [
        {"review": "a great fun film", "stars": 4.5, "genre": "drama"},
        {"review": "a boring awful film", "stars": 1.0, "genre": "comedy"},
    ]
    with _client(classifier) as client:
        plain = client.post("/predict", json=rows).json()
        answer = client.post("/predict?proba=true", json=rows).json()
    frame = pd.DataFrame(rows)
    assert plain == {"predictions": classifier.predict(frame).tolist()}
    assert answer["predictions"] == ["pos", "neg"]
    expected = classifier.predict_proba(frame)
    got = pd.DataFrame(answer["proba"])
    np.testing.assert_allclose(got[["neg", "pos"]].to_numpy(), expected.to_numpy())


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        (b"[{", 400, "body: got malformed JSON"),
        (b"\xff\xfe", 400, "body: got malformed JSON"),
        (b"[]", 422, "body: got an empty list"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "body: got JSON nested too deeply"),
        (b"[{}]", 422, "columns: got a table without"),
        (b'"text"', 422, "body: got 'text'"),
        (b'[{"review": "a film"}]', 422, "columns: got a table without"),
        (b'[{"review": 3, "stars": 1, "genre": "drama"}]', 422, "text column 'review'"),
        (b'[{"review": "a", "stars": "many", "genre": "x"}]', 422, "numeric column"),
        (b'[{"review": "a", "stars": [1], "genre": "x"}]', 422, "'stars': got a"),
        (b'[{"review": "a", "stars": 1, "genre": "x"}, [1]]', 422, "rows: got a"),
        (b'[["a film", 1]]', 422, "row 0: got a list of 2 values. Expected 3"),
        (b'[{"review": "a", "stars": NaN, "genre": "x"}]', 422, "got nan"),
    ],
)
def test_bad_bodies_are_answered_in_one_line(classifier, body, status, match):
    with _client(classifier) as client:
        response = client.post("/predict", content=body)
    assert response.status_code == status
    detail = response.json()["detail"]
    assert match in detail and "\n" not in detail and ". Expected " in detail


def test_bad_query_and_proba_on_a_regressor_are_422(regression):
    with _client(regression) as client:
        flag = client.post("/predict?proba=maybe", json={"x": 1})
        proba = client.post("/predict?proba=true", json={"x": 1})
    assert flag.status_code == proba.status_code == 422
    assert "proba: got 'maybe'. Expected true or false" in flag.json()["detail"]
    assert "proba: got proba=true for a regression model" in proba.json()["detail"]


def test_body_and_row_limits_are_413(regression):
    with _client(regression, max_body_bytes=64, max_rows=2) as client:
        big = client.post("/predict", json=[{"x": float(i)} for i in range(20)])
        many = client.post("/predict", json=[[1], [2], [3]])
        chunked = client.post(
            "/predict", content=iter([b"[", b" " * 100, b"[1]]"])
        )  # no Content-Length: counted while reading
    assert big.status_code == many.status_code == chunked.status_code == 413
    assert "body: got more than 64 bytes" in big.json()["detail"]
    assert "body: got more than 64 bytes" in chunked.json()["detail"]
    assert (
        "rows: got 3 rows in one request. Expected at most 2" in many.json()["detail"]
    )


def test_a_failing_batch_is_500_with_an_id_and_the_server_keeps_serving(
    regression, caplog
):
    client = _client(regression)
    with client, caplog.at_level(logging.ERROR, logger="hybridml.serve"):
        predictor = client.app.state.service.predictor
        real = predictor.predict

        def flaky(groups, proba):
            if any(row["x"] == 13 for rows in groups for row in rows):
                raise RuntimeError("unlucky row")
            return real(groups, proba)

        predictor.predict = flaky
        client.app.state.service.batcher.predict = flaky
        failed = client.post("/predict", json={"x": 13})
        after = client.post("/predict", json={"x": 1})
    assert failed.status_code == 500
    detail = failed.json()["detail"]
    error_id = detail.split("id ")[1].split(")")[0]
    assert "predict: got an internal error (RuntimeError" in detail
    assert error_id in caplog.text and "unlucky row" in caplog.text
    assert after.status_code == 200
    np.testing.assert_allclose(after.json()["predictions"], [3.0])


def test_a_request_racing_the_shutdown_is_503(regression):
    with _client(regression) as client:
        client.app.state.service.batcher.stop()  # as at shutdown, before ready is unset
        response = client.post("/predict", json={"x": 1})
    assert response.status_code == 503
    assert "server: got a request while not ready" in response.json()["detail"]


def test_a_slow_batch_is_504_after_the_timeout(regression):
    client = _client(regression, timeout_s=0.2)
    with client:
        real = client.app.state.service.batcher.predict

        def slow(groups, proba):
            time.sleep(0.6)
            return real(groups, proba)

        client.app.state.service.batcher.predict = slow
        response = client.post("/predict", json={"x": 1})
    assert response.status_code == 504
    assert "predict: got no result within 0.2 s" in response.json()["detail"]


def test_not_ready_before_warm_up_is_503(regression):
    client = _client(regression)  # no `with`: the lifespan (warm-up) has not run
    ready = client.get("/ready")
    predict = client.post("/predict", json={"x": 1})
    assert ready.status_code == predict.status_code == 503
    assert "server: got a request while not ready" in predict.json()["detail"]
    with client:
        assert client.get("/ready").json() == {"status": "ready"}
        assert client.get("/health").json() == {"status": "ok"}


def test_warm_up_runs_the_model_before_the_first_request(regression):
    calls = []
    client = _client(regression)
    real = client.app.state.service.batcher.predict
    client.app.state.service.batcher.predict = lambda groups, p: (
        calls.append(sum(map(len, groups))) or real(groups, p)
    )
    with client:
        assert calls == [2]  # the dummy batch, before any request
        client.post("/predict", json={"x": 1})
    assert calls == [2, 1]


def test_schema_names_columns_roles_types_and_classes(classifier):
    with _client(classifier) as client:
        schema = client.get("/schema").json()
    assert schema["columns"] == ["review", "stars", "genre"]
    # a categorical column's JSON type comes from the model's schema where
    # the model file has one (hybridml after issue 26), else "category"
    genre = "string" if getattr(classifier, "schema", None) else "category"
    assert schema["dtypes"] == {"review": "string", "stars": "number",
                                "genre": genre}  # fmt: skip
    assert schema["roles"]["target"] == "label"
    assert schema["classes"] == ["neg", "pos"] and schema["proba"] is True
    assert schema["model"]["head"] == "logreg"


def test_schema_carries_the_saved_schema_and_levels_where_the_model_has_one(
    classifier,
):
    genre = {"role": "categorical", "kind": "string", "levels": ["drama", "x"]}
    classifier.schema = {"genre": genre}
    with _client(classifier) as client:
        schema = client.get("/schema").json()
        openapi = client.get("/openapi.json").json()
    assert schema["levels"] == {"genre": ["drama", "x"]}
    assert schema["dtypes"]["genre"] == "string"
    assert schema["schema"]["genre"]["levels"] == ["drama", "x"]
    example = openapi["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert example["application/json"]["example"][0]["genre"] == "drama"


def test_metrics_are_prometheus_text_and_count_what_happened(regression):
    with _client(regression) as client:
        client.post("/predict", json=[[1], [2], [3]])
        client.post("/predict", json={"x": 1})
        client.post("/predict", content=b"{")
        response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = response.text.splitlines()
    values = {}
    for line in lines:
        if line.startswith("#"):
            assert line.split()[1] in ("HELP", "TYPE")
            continue
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    assert values['hybridml_serve_requests_total{code="200"}'] == 2
    assert values['hybridml_serve_requests_total{code="400"}'] == 1
    assert values["hybridml_serve_rows_total"] == 4
    assert values["hybridml_serve_batch_rows_count"] == 2  # warm-up not counted
    assert values["hybridml_serve_batch_rows_sum"] == 4
    assert values['hybridml_serve_batch_rows_bucket{le="1"}'] == 1
    assert values['hybridml_serve_batch_rows_bucket{le="2"}'] == 1
    assert values['hybridml_serve_batch_rows_bucket{le="4"}'] == 2
    assert values['hybridml_serve_batch_rows_bucket{le="+Inf"}'] == 2
    q50 = values['hybridml_serve_request_latency_seconds{quantile="0.5"}']
    q99 = values['hybridml_serve_request_latency_seconds{quantile="0.99"}']
    assert 0 < q50 <= q99
    assert values["hybridml_serve_request_latency_seconds_count"] == 3


def test_latency_quantiles_are_those_of_the_window():
    metrics = Metrics(window=100)
    for ms in range(1, 201):  # the first 100 fall out of the window
        metrics.request(200, ms / 1000)
    text = metrics.render()
    assert 'latency_seconds{quantile="0.5"} 0.1505' in text
    assert "latency_seconds_count 200" in text
    assert 'quantile="0.5"} NaN' in Metrics().render()


def test_page_is_self_contained_and_openapi_is_served(classifier):
    with _client(classifier) as client:
        page = client.get("/")
        openapi = client.get("/openapi.json")
        docs = client.get("/docs")
    assert page.status_code == 200 and "<script>" in page.text
    assert 'fetch("schema")' in page.text and "predict" in page.text
    assert " src=" not in page.text and "//cdn" not in page.text  # nothing fetched
    assert "/predict" in openapi.json()["paths"]
    assert docs.status_code == 200


# -- no mix-up under concurrency ------------------------------------------------


def test_concurrent_requests_each_get_their_own_rows(regression):
    """32 threads, 1-3 rows each, different x: each answer is 2x + 1 of its own."""
    client = _client(regression, max_batch=16, max_wait_ms=20)
    rng = random.Random(0)
    jobs = []
    for i in range(320):
        n = rng.randint(1, 3)
        jobs.append([float(1000 * i + j) for j in range(n)])

    def send(xs):
        response = client.post("/predict", json=[{"x": x} for x in xs])
        return response.status_code, response.json()["predictions"]

    with client, ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(send, jobs))
        metrics = client.app.state.service.metrics
    wrong = [
        (xs, got)
        for xs, (status, got) in zip(jobs, answers, strict=True)
        if status != 200 or not np.allclose(got, [2 * x + 1 for x in xs])
    ]
    assert wrong == []
    # the test means something only if requests were really batched together
    assert metrics.batches < len(jobs)
    assert metrics.rows == sum(map(len, jobs))


def test_a_bad_request_does_not_fail_good_ones_batched_with_it(classifier):
    client = _client(classifier, max_batch=64, max_wait_ms=200)
    good = {"review": "a great film", "stars": 4.0, "genre": "drama"}
    bad = {"review": None, "stars": 4.0, "genre": "drama"}
    with client, ThreadPoolExecutor(6) as pool:
        futures = [
            pool.submit(client.post, "/predict", json=[bad if i == 2 else good])
            for i in range(6)
        ]
        codes = [f.result().status_code for f in futures]
    assert codes == [200, 200, 422, 200, 200, 200]


def test_a_categorical_kind_is_judged_per_request_in_a_batch(classifier):
    """A number sent for a text category is refused as when sent alone, even
    batched with rows that send text (in one frame the column would be mixed,
    which is not checked, and the number would pass as an unseen level)."""
    client = _client(classifier, max_batch=64, max_wait_ms=300)
    good = {"review": "a great film", "stars": 4.0, "genre": "drama"}
    odd = {"review": "a great film", "stars": 4.0, "genre": 3}
    calls = []
    with client, ThreadPoolExecutor(4) as pool:
        batcher = client.app.state.service.batcher
        batcher.company_s = float("inf")  # the first request waits too
        real = batcher.predict
        batcher.predict = lambda groups, p: calls.append(len(groups)) or real(groups, p)
        futures = [
            pool.submit(client.post, "/predict", json=[odd if i == 1 else good])
            for i in range(4)
        ]
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200, 422, 200, 200]
    detail = answers[1].json()["detail"]
    assert "categorical column 'genre': got number values" in detail
    expected = classifier.predict(pd.DataFrame([good])).tolist()
    assert all(answers[i].json()["predictions"] == expected for i in (0, 2, 3))
    assert calls[0] == 4  # one batch of all four, refused, then the good three
    assert calls[1:] == [3]


# -- the command line and run() -------------------------------------------------


def test_serve_refuses_image_models_and_missing_extras(regression, monkeypatch):
    regression.roles = {**regression.roles, "image": ["photo"]}
    with pytest.raises(ValueError, match=r"serve: got a model with image columns"):
        create_app(regression)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "fastapi" else real(name, *a),
    )
    with pytest.raises(ImportError, match=r'pip install "hybridml\[serve\]"'):
        create_app(regression)


def test_run_checks_its_options_before_loading(tmp_path, regression_path):
    with pytest.raises(ValueError, match="max_wait_ms: got -1"):
        run(regression_path, max_wait_ms=-1)
    with pytest.raises(ValueError, match="max_batch: got 0"):
        run(regression_path, max_batch=0)
    with pytest.raises(FileNotFoundError, match="model file: got"):
        run(tmp_path / "missing.hml")


def test_run_hands_uvicorn_the_app_or_the_worker_factory(monkeypatch, regression_path):
    import uvicorn

    from hybridml.serve import _app_from_env

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.delenv("HYBRIDML_SERVE_CONFIG", raising=False)
    run(regression_path, port=9, max_batch=8)
    app, options = calls[-1]
    assert app.state.service.batcher.max_batch == 8
    assert options["host"] == "127.0.0.1" and options["port"] == 9
    with pytest.warns(UserWarning, match="serve: got --host '0.0.0.0', reachable"):
        run(regression_path, host="0.0.0.0", workers=2, max_wait_ms=7)
    factory, options = calls[-1]
    assert factory == "hybridml.serve:_app_from_env"
    assert options["factory"] is True and options["workers"] == 2
    worker_app = _app_from_env()  # what each worker process builds
    assert worker_app.state.service.batcher.max_wait_ms == 7
    assert os.environ["HYBRIDML_SERVE_CONFIG"]  # set by run, for the workers


def test_serve_applies_the_model_file_key(regression_path, tmp_path):
    """serve loads through load_model: a signed file needs its key."""
    from hybridml.serve.predictor import load

    signed = tmp_path / "signed.hml"
    save_model(load_model(regression_path), signed, key="k" * 20)
    assert load(signed, "k" * 20).task == "regression"
    with pytest.raises(ValueError, match="does not verify"):
        load(signed, "z" * 20)
    with pytest.raises(ValueError, match="does not verify"):
        run(signed, key="z" * 20)  # refused before any port is taken


def test_cli_serve_errors_are_one_line(tmp_path, capsys):
    from hybridml.cli import main

    assert main(["serve", str(tmp_path / "missing.hml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: model file: got") and err.count("\n") == 1


# -- a real server process: SIGTERM drains --------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0):
    import httpx

    return httpx.get(url, timeout=timeout)


@pytest.mark.slow  # a real server process: 5-20 s of imports and start-up
def test_sigterm_answers_in_flight_requests_then_exits(regression_path):
    import httpx

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "hybridml", "serve", str(regression_path),
           "--port", str(port), "--max-wait-ms", "1500"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ}
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                if _get(base + "/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.1)
        answer = {}

        def send():
            r = httpx.post(base + "/predict", json=[{"x": 7}], timeout=30)
            answer.update(status=r.status_code, body=r.json())

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.5)  # the request now waits in the batcher (1.5 s)
        proc.send_signal(signal.SIGTERM)
        sender.join(30)
        code = proc.wait(30)
        log = proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert answer["status"] == 200, log
    np.testing.assert_allclose(answer["body"]["predictions"], [15.0])
    # uvicorn re-raises the SIGTERM once drained: killed by it, after a clean exit
    assert code in (0, -signal.SIGTERM), log
    assert "Application shutdown complete" in log
    with pytest.raises(httpx.TransportError):
        _get(base + "/health", timeout=1)


def test_openapi_json_is_valid_json(regression):
    with _client(regression) as client:
        assert json.loads(client.get("/openapi.json").text)["openapi"]


# -- a real (tiny) backbone: batched rows embed as they do alone ----------------


@pytest.fixture(scope="module")
def text_model_path(text_preset, tmp_path_factory):
    from _baseline_data import text_frame

    from hybridml.baseline.finalize import finalize
    from hybridml.baseline.run import run_steps

    session = run_steps(
        text_frame(12), target="label", text="review", backbones=[str(text_preset)],
        heads="logreg", cv=3, stack=0, image=(), tabular=None, groups=None,
        metric=None, task="auto", limit=None, random_state=0, n_jobs=None,
    )  # fmt: skip
    board = session.board
    deep = int(board.loc[board["kind"] == "deep", "rank"].iloc[0])
    path = tmp_path_factory.mktemp("text_model") / "text.hml"
    return save_model(finalize(session, deep), path)


def test_backbone_model_batched_answers_match_offline_predictions(text_model_path):
    from _baseline_data import text_frame

    model = load_model(text_model_path)
    frame = text_frame(8, seed=5)[["review"]]
    expected = model.predict_proba(frame)[["proba_neg", "proba_pos"]].to_numpy()
    labels = model.predict(frame).tolist()
    assert len(set(expected[:, 1].round(6))) > 1  # rows really differ
    client = _client(model, max_batch=8, max_wait_ms=30)

    def send(i):
        r = client.post("/predict?proba=true", json=frame.iloc[[i]].to_dict("records"))
        return i, r.status_code, r.json()

    with client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(len(frame))))
        batches = client.app.state.service.metrics.batches
    for i, status, body in answers:
        assert status == 200
        assert body["predictions"] == [labels[i]]
        got = [body["proba"][0]["neg"], body["proba"][0]["pos"]]
        np.testing.assert_allclose(got, expected[i], atol=1e-5)
    assert batches < len(frame)  # rows of several requests shared a backbone call

"""run_baseline: the leaderboard, its classical baselines, its report and its errors.

Most tests run with ``backbones=()`` (classical baselines only) so they need no
Keras; the deep rows run on the tiny presets of ``conftest.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _baseline_data import image_frame, text_frame
from PIL import Image

from hybridml import run_baseline
from hybridml.baseline import embed_frame, format_leaderboard, write_report
from hybridml.datasets import load_wine

COLUMNS = [
    "rank", "features", "head", "kind", "metric", "mean", "std",
    "embed_s", "fit_s", "dims", "scores",
]  # fmt: skip


@pytest.fixture(scope="module")
def wine_board():
    return run_baseline(load_wine(), target="label", heads="logreg,knn", cv=3)


def test_tabular_leaderboard_has_heads_hgb_and_stack_ranked_best_first(wine_board):
    board = wine_board
    assert list(board.columns) == COLUMNS
    assert set(zip(board["features"].str[:8], board["head"], strict=True)) == {
        ("tabular", "logreg"),
        ("tabular", "knn"),
        ("tabular", "hgb"),
        ("stack of", "logreg"),
        ("chance", "prior"),  # chance: the majority class
    }
    assert board["rank"].tolist() == [1, 2, 3, 4, 5]
    assert board["mean"].is_monotonic_decreasing
    assert all(len(s) == 3 for s in board["scores"])
    np.testing.assert_allclose(board["mean"], [np.mean(s) for s in board["scores"]])
    models = board[board["kind"] != "chance"]
    assert (models["mean"] > 0.85).all()  # wine is easy; a broken head is not
    chance = board[board["kind"] == "chance"]
    assert chance["mean"].item() == pytest.approx(71 / 178, abs=0.01)
    assert chance["rank"].item() == 5 and np.isnan(chance["dims"].item())
    tab = board[board["kind"] == "classical"]
    assert (tab["dims"] == 13).all()
    assert board.attrs["n_rows"] == 178
    assert board.attrs["classes"] == ["class_0", "class_1", "class_2"]
    assert len(board.attrs["numeric"]) == 13


def test_stack_members_are_the_best_rows(wine_board):
    board = wine_board
    stack = board.loc[board["kind"] == "stack", "features"].item()
    others = board[board["kind"] == "classical"].sort_values("mean", ascending=False)
    expected = [f"{f} + {h}" for f, h in others[["features", "head"]].values[:3]]
    assert stack == "stack of 3: " + " | ".join(expected)
    assert np.isnan(board.loc[board["kind"] == "stack", "dims"].item())


def test_text_with_no_backbone_runs_tfidf_and_tabular_columns_are_appended():
    df = text_frame()
    board = run_baseline(df, target="label", text="review", backbones=(), cv=3)
    assert board.attrs["numeric"] == ["stars"]
    assert board.attrs["categorical"] == ["genre"]
    rows = dict(zip(board["features"], board["mean"], strict=False))
    assert "tfidf + tabular" in rows and "tabular" in rows
    assert rows["tfidf + tabular"] > 0.9  # sentiment words decide the label


def test_tabular_none_uses_text_only_and_auto_skips_identifiers():
    df = text_frame().assign(row_id=np.arange(24), note=[f"n{i}" for i in range(24)])
    board = run_baseline(
        df, target="label", text="review", tabular=None, backbones=(), stack=0, cv=3
    )
    assert board["features"].tolist() == ["tfidf", "chance"]
    auto = run_baseline(df, target="label", text="review", backbones=(), stack=0, cv=3)
    assert auto.attrs["ignored"] == ["row_id", "note"]


def test_images_get_pixel_and_hog_baselines(tmp_path):
    df = image_frame(tmp_path)
    csv = tmp_path / "images.csv"
    df.to_csv(csv, index=False)
    # relative paths resolve next to the CSV file, whatever the working directory
    board = run_baseline(csv, target="label", image="path", backbones=(), cv=2, stack=0)
    board = board[board["kind"] == "classical"]
    got = dict(zip(board["features"], board["dims"], strict=True))
    assert got == {"pixels": 32 * 32 * 3, "hog": 7 * 7 * 36}
    assert (board["mean"] >= 0.9).all()  # stripes: trivially separable


def test_hog_responds_to_edge_orientation():
    from hybridml.baseline.features import hog

    vertical_edge = np.zeros((1, 64, 64))
    vertical_edge[:, :, 32:] = 1.0  # gradient along x: orientation 0 degrees
    horizontal_edge = vertical_edge.transpose(0, 2, 1)  # 90 degrees
    fv, fh = hog(vertical_edge), hog(horizontal_edge)
    assert fv.shape == (1, 1764) and fv.dtype == np.float32
    bins_v = fv.reshape(7, 7, 4, 9).sum(axis=(0, 1, 2))
    bins_h = fh.reshape(7, 7, 4, 9).sum(axis=(0, 1, 2))
    assert bins_v.argmax() == 0 and bins_h.argmax() == 4


def test_image_arrays_in_a_dataframe_are_accepted():
    rng = np.random.RandomState(0)
    from _baseline_data import stripes

    images = [stripes(k, rng) for k in ("vertical", "horizontal") for _ in range(6)]
    gray = [im[..., 0] / 255.0 for im in images]  # float in [0, 1], 2-D
    df = pd.DataFrame({"img": gray, "label": ["v"] * 6 + ["h"] * 6})
    board = run_baseline(df, target="label", image="img", backbones=(), cv=2, stack=0)
    board = board[board["kind"] == "classical"]
    assert dict(zip(board["features"], board["dims"], strict=True)) == {
        "pixels": 32 * 32,  # all grayscale: one channel
        "hog": 1764,
    }


def test_regression_uses_kfold_and_neg_metrics_are_reported_as_errors():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    df = pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=X @ [1.0, 2.0, 0.5])
    board = run_baseline(
        df, target="y", heads="logreg", cv=3, stack=0, metric="neg_mean_absolute_error"
    )
    assert board.attrs["task"] == "regression"
    assert board.attrs["greater_is_better"] is False
    assert board["metric"].unique().tolist() == ["mean_absolute_error"]
    assert (board["mean"] > 0).all() and board["mean"].is_monotonic_increasing
    assert board.iloc[0]["head"] == "logreg"  # ridge fits a linear target best
    r2 = run_baseline(df, target="y", heads="logreg", cv=3, stack=0)
    assert r2.attrs["metric"] == "r2" and r2.iloc[0]["mean"] > 0.99


def test_limit_takes_a_stratified_seeded_subset():
    df = text_frame(n_per_class=30)
    df = pd.concat([df, df[df["label"] == "pos"]], ignore_index=True)  # 2:1
    kw = dict(
        target="label",
        text="review",
        tabular=None,
        backbones=(),
        stack=0,
        cv=3,
        limit=30,
    )
    a = run_baseline(df, **kw)
    assert a.attrs["n_rows"] == 30
    from hybridml.baseline.table import subsample as _subsample

    sub = _subsample(df, "label", 30, "classification", 0)
    assert sub["label"].value_counts().to_dict() == {"pos": 20, "neg": 10}
    pd.testing.assert_frame_equal(sub, _subsample(df, "label", 30, "classification", 0))
    assert not sub.equals(_subsample(df, "label", 30, "classification", 1))


def test_write_report_writes_csv_json_and_png(wine_board, tmp_path):
    folder = write_report(wine_board, tmp_path / "report")
    csv = pd.read_csv(folder / "leaderboard.csv")
    assert csv["features"].tolist() == wine_board["features"].tolist()
    np.testing.assert_allclose(csv["fold1"], [s[0] for s in wine_board["scores"]])
    payload = json.loads((folder / "leaderboard.json").read_text())
    assert payload["settings"]["metric"] == "accuracy"
    assert payload["leaderboard"][0]["scores"] == wine_board["scores"].iloc[0]
    with Image.open(folder / "scores.png") as png:
        assert png.format == "PNG" and png.size[0] > 500


def test_format_leaderboard_prints_every_row_and_the_stack_members(wine_board):
    text = format_leaderboard(wine_board)
    lines = text.splitlines()
    assert lines[0].startswith("classification of 'label': 178 rows, 3-fold")
    assert lines[1].split() == [
        "rank",
        "features",
        "head",
        "accuracy",
        "embed",
        "s",
        "fit",
        "s",
        "dims",
    ]
    best = wine_board.iloc[0]
    assert f"{best['mean']:.3f} +/- {best['std']:.3f}" in lines[2]
    assert lines[-1].startswith("stack of 3 = ")
    assert len(lines) == 2 + len(wine_board) + 1


def test_deep_rows_embed_each_row_once(text_preset):
    df = text_frame()
    from hybridml import EmbeddingCache

    cache = EmbeddingCache()
    board = run_baseline(
        df,
        target="label",
        text="review",
        tabular=None,
        backbones=[str(text_preset)],
        heads="logreg,knn",
        cv=3,
        stack=2,
        cache=cache,
    )
    deep = board[board["kind"] == "deep"]
    assert sorted(deep["head"]) == ["knn", "logreg"]
    assert set(deep["features"]) == {text_preset.name}
    assert (deep["dims"] == 8).all()  # the tiny BERT's hidden size
    assert (deep["embed_s"] > 0).all()
    distinct = df["review"].nunique()
    # every distinct review embedded once, though 2 heads x 3 folds + a stack used it
    assert cache.stats()["written"] == distinct
    assert cache.misses == distinct and cache.hits == 0


def test_image_backbone_rows(tmp_path, cnn_preset):
    df = image_frame(tmp_path)
    board = run_baseline(
        df.assign(path=[str(tmp_path / p) for p in df["path"]]),
        target="label",
        image="path",
        backbones=[str(cnn_preset)],
        heads="logreg",
        cv=2,
        stack=0,
    )
    assert set(board["features"]) == {cnn_preset.name, "pixels", "hog", "chance"}
    assert board.loc[board["kind"] == "deep", "dims"].item() == 32  # last stage


def test_embed_frame_keeps_columns_and_names_vectors(text_preset):
    df = text_frame(n_per_class=3)
    out = embed_frame(df, text="review", backbone=str(text_preset), keep=["label"])
    assert list(out.columns) == ["label"] + [f"review_emb{j}" for j in range(8)]
    assert out.dtypes.iloc[1] == np.float32 and len(out) == 6


# -- errors: each says what, what was expected and how to fix ------------------


def test_missing_file_and_wrong_data_type(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data file: got .*nope.csv"):
        run_baseline(tmp_path / "nope.csv", target="label")
    with pytest.raises(FileNotFoundError, match=r"\(a folder\)"):
        run_baseline(tmp_path, target="label")
    with pytest.raises(TypeError, match="Expected a pandas DataFrame or the path"):
        run_baseline([1, 2], target="label")


def test_unknown_column_lists_columns_and_suggests():
    with pytest.raises(
        ValueError,
        match=r"text column: got 'reveiw'.*'review'.*"
        r"Did you mean 'review'\?",
    ):
        run_baseline(text_frame(), target="label", text="reveiw")
    with pytest.raises(ValueError, match="target column: got 'Label'"):
        run_baseline(text_frame(), target="Label", text="review")


def test_one_class_and_too_few_rows_per_class():
    df = text_frame()
    with pytest.raises(ValueError, match=r"single class 'pos'.*at least two"):
        run_baseline(
            df[df["label"] == "pos"], target="label", text="review", backbones=()
        )
    few = pd.concat([df[df["label"] == "pos"], df[df["label"] == "neg"].head(2)])
    with pytest.raises(
        ValueError,
        match=r"rows per class: got 'neg': 2 with cv=5.*"
        r"Lower cv to 2",
    ):
        run_baseline(few, target="label", text="review", backbones=())
    rng = np.random.RandomState(0)
    reg = pd.DataFrame({"x": rng.normal(size=6), "y": rng.normal(size=6)})
    with pytest.raises(ValueError, match=r"rows: got 6 for cv=5"):
        run_baseline(reg, target="y")


def test_missing_image_paths_are_counted_and_shown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a DataFrame's relative paths: from the cwd
    df = image_frame(tmp_path)
    df.loc[[0, 3, 5, 7], "path"] = ["gone/a.png", "gone/b.png", "gone/c.png", "x.png"]
    df.loc[1, "path"] = None
    with pytest.raises(
        FileNotFoundError,
        match=r"image column 'path': got 5 of 16 "
        r"paths that do not exist \(row 0: 'gone/a.png', row 1: "
        r"'<empty>', row 3: 'gone/b.png', \.\.\.\)",
    ):
        run_baseline(df, target="label", image="path", backbones=())


def test_unreadable_image_file_is_named(tmp_path):
    df = image_frame(tmp_path)
    (tmp_path / "img" / "broken.png").write_bytes(b"not a png")
    df.loc[2, "path"] = "img/broken.png"
    df["path"] = [str(tmp_path / p) for p in df["path"]]  # DataFrame: cwd-relative
    with pytest.raises(
        ValueError,
        match=r"image column 'path': got 1 of 16 files that cannot be decoded "
        r"\(row 2: '.*broken.png' \(UnidentifiedImageError",
    ):
        run_baseline(df, target="label", image="path", backbones=(), cv=2)


def test_bad_image_array_shape():
    df = pd.DataFrame({"img": [np.zeros((2, 2, 2, 2))] * 4, "label": [0, 1] * 2})
    with pytest.raises(ValueError, match=r"got an array of shape \(2, 2, 2, 2\)"):
        run_baseline(df, target="label", image="img", backbones=(), cv=2)


def test_parameter_errors():
    df = text_frame()
    kw = dict(target="label", text="review", backbones=())
    with pytest.raises(ValueError, match=r"head: got 'svm'.*Did you mean 'svc'"):
        run_baseline(df, heads="logreg,svm", **kw)
    with pytest.raises(ValueError, match="Expected each head once"):
        run_baseline(df, heads="knn,knn", **kw)
    with pytest.raises(ValueError, match=r"metric: got 'acuracy'.*'accuracy'"):
        run_baseline(df, metric="acuracy", **kw)
    with pytest.raises(ValueError, match=r"cv: got 1\. Expected an integer >= 2"):
        run_baseline(df, cv=1, **kw)
    with pytest.raises(TypeError, match=r"cv: got 2\.5\. Expected an integer"):
        run_baseline(df, cv=2.5, **kw)
    with pytest.raises(ValueError, match="task: got 'clf'"):
        run_baseline(df, task="clf", **kw)
    with pytest.raises(ValueError, match=r"got dtype \w+ with task='regression'"):
        run_baseline(df, task="regression", **kw)


def test_data_errors():
    df = text_frame()
    with pytest.raises(ValueError, match=r"target 'label': got 2 missing values"):
        run_baseline(
            df.assign(label=[None, None, *df["label"][2:]]),
            target="label",
            text="review",
        )
    bad = df.copy()
    bad.loc[4, "review"] = np.nan
    with pytest.raises(
        ValueError,
        match=r"text column 'review': got 1 missing .*"
        r"rows \[4\]",
    ):
        run_baseline(bad, target="label", text="review")
    with pytest.raises(ValueError, match="'label', which is already the target"):
        run_baseline(df, target="label", text="label")
    with pytest.raises(ValueError, match="'review', which is already the target, a"):
        run_baseline(df, target="label", text="review", tabular=["stars", "review"])
    with pytest.raises(ValueError, match="features: got none"):
        run_baseline(df[["label"]], target="label")
    with pytest.raises(ValueError, match="backbones: got 1 but no text or image"):
        run_baseline(df, target="label", backbones=["all_minilm_l6_v2_en"])


def test_backbone_of_the_wrong_modality(cnn_preset):
    with pytest.raises(
        ValueError, match=r"got a backbone for images but no image column"
    ):
        run_baseline(
            text_frame(), target="label", text="review", backbones=[str(cnn_preset)]
        )


def test_embed_frame_needs_one_modality(tmp_path):
    df = image_frame(tmp_path).assign(review="good")
    with pytest.raises(ValueError, match="Expected text columns or image columns"):
        embed_frame(df, text="review", image="path")
    with pytest.raises(ValueError, match="Expected text columns or image columns"):
        embed_frame(df)


def test_make_head_rejects_unknown_names():
    from hybridml._heads import make_head

    with pytest.raises(ValueError, match="head: got 'nope'"):
        make_head("nope", "classification", 0)


def test_warnings_are_collected_per_model_not_printed_per_fold(recwarn):
    # The chance row predicts only "neg": precision of "pos" is ill-defined.
    board = run_baseline(text_frame(), target="label", text="review", tabular=None,
                         backbones=(), metric="precision", cv=3, stack=0)  # fmt: skip
    notes = board.attrs["warnings"]
    assert list(notes) == ["chance + prior"]
    assert notes["chance + prior"][0].startswith("UndefinedMetricWarning: Precision")
    assert len(notes["chance + prior"]) == 1  # once, not once per fold
    assert not [w for w in recwarn if "Precision" in str(w.message)]
    assert "warning, chance + prior: UndefinedMetricWarning" in format_leaderboard(
        board
    )


def test_grouped_cv_keeps_a_groups_rows_out_of_its_test_fold():
    # Each film's reviews share one label and a film-specific token, and carry
    # nothing else: ungrouped CV learns the token (a leak), grouped CV cannot.
    rng = np.random.RandomState(0)
    films = [f"film{g}" for g in range(20)]
    labels = {f: ("pos" if i % 2 else "neg") for i, f in enumerate(films)}
    rows = [(f, f"{f} review {rng.randint(1000)}", labels[f]) for f in films
            for _ in range(6)]  # fmt: skip
    df = pd.DataFrame(rows, columns=["film", "review", "label"])
    kw = dict(target="label", text="review", tabular=None, backbones=(), cv=4,
              stack=0)  # fmt: skip
    leaky = run_baseline(df, **kw)
    grouped = run_baseline(df, groups="film", **kw)
    assert leaky.attrs["splitter"] == "StratifiedKFold"
    assert grouped.attrs["splitter"] == "StratifiedGroupKFold"
    assert grouped.attrs["groups"] == "film"
    tfidf = {b.attrs["splitter"]: b.loc[b["features"] == "tfidf", "mean"].item()
             for b in (leaky, grouped)}  # fmt: skip
    assert tfidf["StratifiedKFold"] > 0.95
    assert tfidf["StratifiedGroupKFold"] < 0.7
    assert "4-fold stratified CV grouped by 'film'" in format_leaderboard(grouped)


def test_grouped_regression_uses_group_kfold():
    rng = np.random.RandomState(0)
    df = pd.DataFrame({"x": rng.normal(size=40), "g": np.repeat(np.arange(8), 5)})
    df["y"] = 2 * df["x"] + rng.normal(scale=0.1, size=40)
    board = run_baseline(df, target="y", tabular=["x"], groups="g", heads="logreg",
                         cv=4, stack=0)  # fmt: skip
    assert board.attrs["splitter"] == "GroupKFold"
    assert board.iloc[0]["mean"] > 0.95


def test_group_errors():
    df = text_frame().assign(film=np.repeat(np.arange(4), 6))
    kw = dict(target="label", text="review", backbones=())
    with pytest.raises(ValueError, match=r"groups column: got 'flim'.*Did you mean"):
        run_baseline(df, groups="flim", **kw)
    with pytest.raises(ValueError, match=r"got 4 distinct groups for cv=5"):
        run_baseline(df, groups="film", **kw)
    with pytest.raises(ValueError, match=r"'film': got 1 missing values"):
        run_baseline(df.assign(film=[None, *range(23)]), groups="film", **kw)
    with pytest.raises(ValueError, match="groups column: got 'review', which is"):
        run_baseline(df, groups="review", **kw)
    with pytest.raises(ValueError, match="tabular column: got 'film', which is"):
        run_baseline(df, groups="film", tabular=["film"], cv=2, **kw)


def test_a_cache_folder_keeps_embeddings_across_runs(text_preset, tmp_path):
    from hybridml import EmbeddingCache

    df = text_frame()
    kw = dict(target="label", text="review", tabular=None, heads="logreg", cv=2,
              stack=0, backbones=[str(text_preset)],
              cache=tmp_path / "cache")  # fmt: skip
    first = run_baseline(df, **kw)
    cache = EmbeddingCache.coerce(tmp_path / "cache")  # one rule: cache=DIR
    assert cache.stats()["written"] == df["review"].nunique()
    hits = cache.hits
    second = run_baseline(df, **kw)
    assert cache.hits - hits == df["review"].nunique()  # nothing embedded again
    pd.testing.assert_series_equal(first["mean"], second["mean"])


def test_settings_are_run_baselines_signature_and_fail_at_once():
    import dataclasses
    import inspect

    from hybridml.baseline.run import Settings, run_steps

    params = inspect.signature(run_baseline).parameters
    given = {n: p.default for n, p in params.items()
             if n not in ("data", "save_best", "save_rank", "key")}  # fmt: skip
    fields = {f.name: f.default for f in dataclasses.fields(Settings)}
    fields["target"] = inspect.Parameter.empty  # required in both
    assert fields == given
    with pytest.raises(TypeError, match="unexpected keyword argument 'stak'"):
        run_steps(text_frame(), target="label", stak=2)  # misspelt: before any work
    settings = Settings(target="label")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.cv = 3


def test_a_run_changes_no_step_state(text_preset):
    """The plan is frozen: the splitter comes back in the session."""
    import dataclasses

    from hybridml.baseline.run import run_steps

    session = run_steps(text_frame(), target="label", text="review",
                        backbones=(), heads="logreg", cv=2, stack=0)  # fmt: skip
    with pytest.raises(dataclasses.FrozenInstanceError):
        session.plan.cv = 3
    assert type(session.splitter).__name__ == session.board.attrs["splitter"]

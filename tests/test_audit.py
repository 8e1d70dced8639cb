"""hybridml.baseline.audit: crafted skops payloads never run code at load or predict.

Each crafted file is a real skops archive with a valid whole-file digest (an
attacker recomputes it), so only the closed type list stands between the file
and the code it names. Where a payload can write a marker file, the test first
proves that skops itself would run it (a positive control) and then that
``load_model`` refuses it with the marker absent.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from hybridml import load_model
from hybridml.baseline import archive
from hybridml.baseline.audit import audit_schema, check_loaded
from hybridml.baseline.saved import HybridModel, save_model

PROTOCOL = {"protocol": 2, "_skops_version": "0.16.0"}


def _json(value):
    return {
        "__class__": type(value).__name__,
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
    }


def _tuple(*items):
    return {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
            "content": list(items)}  # fmt: skip


def _dict(**items):
    return {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
            "content": items,
            "key_types": _list(*[_type("builtins", "str")] * len(items))}  # fmt: skip


def _list(*items):
    return {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode",
            "content": list(items)}  # fmt: skip


def _type(module, name):
    return {"__class__": name, "__module__": module, "__loader__": "TypeNode"}


def _payload(schema: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("schema.json", json.dumps({**schema, **PROTOCOL}))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A small saved model and its manifest bytes, to wrap crafted payloads in."""
    df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": ["a", "b", "a", "b"]})
    cols = ColumnTransformer([("numeric", "passthrough", ["x"])])
    pipe = Pipeline([("features", cols), ("head", LogisticRegression())])
    pipe.fit(df[["x"]], [0, 1, 0, 1])
    roles = dict(target="y", text=[], image=[], numeric=["x"], categorical=[],
                 groups=None)  # fmt: skip
    model = HybridModel(pipe, "classification", ["a", "b"], roles, [],
                        {"features": "tabular", "head": "logreg"},
                        schema={"x": {"role": "numeric",
                                      "kind": "number"}})  # fmt: skip
    path = save_model(model, tmp_path_factory.mktemp("good") / "good.hml")
    with zipfile.ZipFile(path) as z:
        return path, z.read("manifest.json"), z.read("model.skops")


def _wrap(good, payload: bytes, out) -> str:
    """A .hml around ``payload`` with a correct digest: only the audit can stop it."""
    _, manifest, _ = good
    out.write_bytes(archive.pack(manifest, payload, None))
    return out


def _marker_code(marker) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')"


def test_the_issue_payload_runs_under_skops_but_not_under_load_model(good, tmp_path):
    """The exact exploit: a numpy testing helper that exec's its first argument."""
    marker = tmp_path / "marker"
    node = {"__class__": "runstring", "__module__": "numpy.testing._private.utils",
            "__loader__": "ConstructorFromReduceNode",
            "content": _tuple(_json(_marker_code(marker)), _dict())}  # fmt: skip
    payload = _payload(node)
    # positive control: skops with that one name trusted runs the code
    sio.loads(payload, trusted=["numpy.testing._private.utils.runstring"])
    assert marker.read_text() == "ran"
    marker.unlink()
    # the old prefix rule ("numpy.") trusted it; the closed list does not
    assert "numpy.testing._private.utils.runstring" in sio.get_untrusted_types(
        data=payload
    )
    with pytest.raises(ValueError, match="'ConstructorFromReduceNode' node"):
        load_model(_wrap(good, payload, tmp_path / "evil.hml"))
    assert not marker.exists()


def test_a_function_hidden_in_a_pipeline_never_runs_at_predict(good, tmp_path):
    """FunctionTransformer(func=partial(runstring, code)) would exec at predict."""
    marker = tmp_path / "marker"
    partial = {"__class__": "partial", "__module__": "functools",
               "__loader__": "PartialNode", "content": {
                   "func": {"__class__": "runstring",
                            "__module__": "numpy.testing._private.utils",
                            "__loader__": "FunctionNode"},
                   "args": _tuple(_json(_marker_code(marker))),
                   "kwds": _dict(), "namespace": _json(None)}}  # fmt: skip
    node = {"__class__": "FunctionTransformer",
            "__module__": "sklearn.preprocessing._function_transformer",
            "__loader__": "ObjectNode", "content": _dict(func=partial)}  # fmt: skip
    payload = _payload(node)
    built = sio.loads(payload, trusted=sio.get_untrusted_types(data=payload))
    built.func({})  # positive control: the payload is live (predict would call it)
    assert marker.read_text() == "ran"
    marker.unlink()
    with pytest.raises(ValueError, match=r"functools\.partial of"):
        load_model(_wrap(good, payload, tmp_path / "evil.hml"))
    assert not marker.exists()


CALLABLE_NODES = {
    "FunctionNode": {"__class__": "system", "__module__": "os",
                     "__loader__": "FunctionNode"},
    "MethodNode": {"__class__": "Popen", "__module__": "subprocess",
                   "__loader__": "MethodNode",
                   "content": {"func": "communicate", "obj": {
                       "__class__": "Popen", "__module__": "subprocess",
                       "__loader__": "ObjectNode"}}},
    "OperatorFuncNode": {"__class__": "methodcaller", "__module__": "operator",
                         "__loader__": "OperatorFuncNode",
                         "attrs": _tuple(_json("system"))},
    "TypeNode": _type("subprocess", "Popen"),
    "ObjectNode": {"__class__": "Popen", "__module__": "subprocess",
                   "__loader__": "ObjectNode", "content": _dict()},
    "ObjectNode with a numpy prefix": {
        "__class__": "IgnoreException", "__module__": "numpy.testing._private.utils",
        "__loader__": "ObjectNode"},
    "DictNode": {"__class__": "getcwd", "__module__": "os",
                 "__loader__": "DictNode", "content": {}, "key_types": _list()},
    "ListNode": {"__class__": "system", "__module__": "os",
                 "__loader__": "ListNode", "content": []},
    "TupleNode": {"__class__": "system", "__module__": "os",
                  "__loader__": "TupleNode", "content": []},
    "SetNode": {"__class__": "system", "__module__": "os",
                "__loader__": "SetNode", "content": []},
    "DefaultDictNode": {"__class__": "defaultdict", "__module__": "collections",
                        "__loader__": "DefaultDictNode",
                        "content": {"default_factory": _type("os", "getcwd"),
                                    "items": _dict()}},
    "NdArrayNode": {"__class__": "system", "__module__": "os",
                    "__loader__": "NdArrayNode", "type": "json", "content": [],
                    "shape": _tuple(_json(0))},
    "RandomStateNode": {"__class__": "getcwd", "__module__": "os",
                        "__loader__": "RandomStateNode", "content": _dict()},
    "RandomGeneratorNode": {"__class__": "getcwd", "__module__": "os",
                            "__loader__": "RandomGeneratorNode", "content": _dict()},
    "LossNode": {"__class__": "system", "__module__": "os",
                 "__loader__": "LossNode", "content": _dict(),
                 "__reduce__": {"args": _tuple()}},
    "DTypeNode": {"__class__": "system", "__module__": "os",
                  "__loader__": "DTypeNode", "content": _json("f8")},
    "MaskedArrayNode": {"__class__": "system", "__module__": "os",
                        "__loader__": "MaskedArrayNode", "content": {}},
    "QuantileForestNode": {"__class__": "system", "__module__": "os",
                           "__loader__": "QuantileForestNode", "content": _dict()},
    "a node kind skops does not know": {"__class__": "system", "__module__": "os",
                                        "__loader__": "ReduceNode"},
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(CALLABLE_NODES))
def test_every_node_kind_that_can_name_a_callable_is_refused_before_skops(
    kind, good, tmp_path, monkeypatch
):
    node = CALLABLE_NODES[kind]
    # nested inside an allowed container, as an attacker would hide it
    payload = _payload(_list(_json(1), node))
    calls = []
    monkeypatch.setattr(sio, "loads", lambda *a, **k: calls.append(a))
    with pytest.raises(ValueError, match=r"model file: got .*(node|partial)"):
        load_model(_wrap(good, payload, tmp_path / "evil.hml"))
    assert calls == []  # refused before skops built a thing


def test_old_skops_protocols_are_refused(good, tmp_path):
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w") as z:
        z.writestr("schema.json", json.dumps({**_json(1), "protocol": 0}))
    with pytest.raises(ValueError, match="skops protocol 0"):
        load_model(_wrap(good, payload.getvalue(), tmp_path / "old.hml"))


def test_partial_of_check_array_with_other_keywords_is_refused():
    node = {"__class__": "partial", "__module__": "functools",
            "__loader__": "PartialNode", "content": {
                "func": {"__class__": "check_array",
                         "__module__": "sklearn.utils.validation",
                         "__loader__": "FunctionNode"},
                "args": _tuple(), "kwds": _dict(accept_sparse=_json(True)),
                "namespace": _json(None)}}  # fmt: skip
    with pytest.raises(ValueError, match="keywords outside"):
        audit_schema({**node, **PROTOCOL})


def test_deep_and_huge_schemas_fail_in_one_line(good, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("schema.json", b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(_wrap(good, buffer.getvalue(), tmp_path / "deep.hml"))


# -- after loading: index arrays scikit-learn reads unchecked --------------------


def _forest():
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.RandomState(0)
    return RandomForestClassifier(n_estimators=2, random_state=0).fit(
        rng.rand(30, 3), rng.randint(0, 2, 30)
    )


def test_a_tree_child_index_out_of_range_is_refused():
    forest = _forest()
    check_loaded(forest)  # a real forest passes
    tree = forest.estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    inner = np.flatnonzero(nodes["left_child"] != -1)[0]
    nodes["left_child"][inner] = 10**6
    tree.__setstate__({**state, "nodes": nodes})
    with pytest.raises(ValueError, match="child index out of range"):
        check_loaded(forest)


def test_a_tree_feature_index_out_of_range_is_refused():
    forest = _forest()
    tree = forest.estimators_[1].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    inner = np.flatnonzero(nodes["left_child"] != -1)[0]
    nodes["feature"][inner] = 99
    tree.__setstate__({**state, "nodes": nodes})
    with pytest.raises(ValueError, match="feature index out of range"):
        check_loaded(forest)


def test_hgb_predictor_and_kd_tree_indices_are_checked():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.RandomState(0)
    X, y = rng.rand(60, 3), rng.randint(0, 2, 60)
    hgb = HistGradientBoostingClassifier(max_iter=3).fit(X, y)
    check_loaded(hgb)
    nodes = hgb._predictors[0][0].nodes
    nodes["right"][0] = len(nodes) + 5
    with pytest.raises(ValueError, match="gradient-boosting tree with a child"):
        check_loaded(hgb)
    knn = KNeighborsClassifier(algorithm="kd_tree").fit(X, y)
    check_loaded(knn)
    state = list(knn._tree.__getstate__())
    state[1] = state[1].copy()
    state[1][0] = 10**6
    knn._tree.__setstate__(tuple(state))
    with pytest.raises(ValueError, match="neighbours tree with a row index"):
        check_loaded(knn)


def test_svm_support_counts_that_disagree_are_refused():
    from sklearn.svm import SVC

    rng = np.random.RandomState(0)
    svc = SVC().fit(rng.rand(30, 2), rng.randint(0, 2, 30))
    check_loaded(svc)
    svc._n_support = svc._n_support + 5
    with pytest.raises(ValueError, match="support vector machine whose counts"):
        check_loaded(svc)

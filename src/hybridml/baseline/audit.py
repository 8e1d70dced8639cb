"""What a ``.hml`` file may hold: a closed list, checked before anything is built.

skops stores a fitted pipeline as a tree of JSON nodes; loading turns each node
into an object, and several node kinds do that by *calling* something the file
names (a class with no arguments, a class with arguments from the file, a
function, a method, a partial, an ``operator`` getter). A rule by prefix
("anything under ``numpy.``") lets a file call ``numpy.testing``'s helpers,
one of which ``exec``s its argument. So this module:

1. reads the payload's zip with bounds on the number and size of its members;
2. walks every node of ``schema.json`` (iteratively: no recursion limit to hit)
   and allows a node only if its kind is in :data:`NODE_KINDS` and its type is
   in that kind's exact list (:func:`allowed_types`): the classes hybridml
   itself writes, as types, never a function or method, except the one
   ``functools.partial(check_array, ...)`` that HistGradientBoosting stores;
3. hands skops exactly the type names it found (skops then audits again);
4. after loading, checks the index arrays of the types skops lists as unsafe
   because scikit-learn reads them without bounds checks (decision trees,
   HistGradientBoosting predictors, k-d / ball trees) and libsvm's support
   vector counts, so a crafted index cannot read outside an array.

Every refusal is a ``ValueError`` with one line naming the node.
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from typing import Any

import numpy as np

# skops' own layout of a payload: one schema plus array files
MAX_PAYLOAD_MEMBERS = 20_000
MAX_SCHEMA_BYTES = 256 * 2**20
MAX_PAYLOAD_UNPACKED = 4 * 2**30

# Node kinds that build data (allowed) and those that call what the file names
# (refused outright): ConstructorFromReduceNode calls a callable with arguments
# from the file, MethodNode / OperatorFuncNode return callables bound to file
# content, DefaultDictNode calls a factory, QuantileForestNode is never written
# by hybridml. (MaskedArrayNode holds GridSearchCV's cv_results_.)
NODE_KINDS = frozenset(
    {
        "DictNode",
        "ListNode",
        "TupleNode",
        "SetNode",
        "SliceNode",
        "JsonNode",
        "BytesNode",
        "BytearrayNode",
        "NdArrayNode",
        "MaskedArrayNode",
        "DTypeNode",
        "ObjectNode",
        "TypeNode",
        "FunctionNode",
        "PartialNode",
        "LossNode",
        "TreeNode",
        "RandomGeneratorNode",
        "RandomStateNode",
        "SparseMatrixNode",
        "CachedNode",
    }
)

# The one callable hybridml's files hold: HistGradientBoosting's preprocessor
# stores FunctionTransformer(func=partial(check_array, dtype=..., ...)).
CALLABLES = frozenset({"sklearn.utils.validation.check_array"})
PARTIAL_KEYWORDS = frozenset({"dtype", "ensure_all_finite"})

_NUMPY_SCALARS = (
    "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
    "uint64", "float16", "float32", "float64", "complex64", "complex128",
    "str_", "bytes_", "object_",
)  # fmt: skip
_PRIMITIVES = ("str", "int", "float", "bool", "NoneType", "complex")


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.cache
def _estimator_classes() -> frozenset[str]:
    """The scikit-learn / xgboost classes a hybridml leaderboard row can hold."""
    from sklearn import (
        calibration,
        compose,
        ensemble,
        impute,
        linear_model,
        neighbors,
        pipeline,
        preprocessing,
        svm,
        tree,
    )
    from sklearn import feature_extraction as fe
    from sklearn import model_selection as ms
    from sklearn._loss import link, loss
    from sklearn.ensemble._hist_gradient_boosting import binning, predictor
    from sklearn.metrics import _dist_metrics
    from sklearn.utils import _bunch

    classes = [
        pipeline.Pipeline, compose.ColumnTransformer,
        preprocessing.StandardScaler, preprocessing.OneHotEncoder,
        preprocessing.OrdinalEncoder, preprocessing.LabelEncoder,
        preprocessing.FunctionTransformer, impute.SimpleImputer,
        fe.text.TfidfVectorizer, fe.text.TfidfTransformer,
        linear_model.LogisticRegression, linear_model.Ridge, linear_model.RidgeCV,
        svm.SVC, svm.SVR, calibration.CalibratedClassifierCV,
        calibration._CalibratedClassifier, calibration._SigmoidCalibration,
        ensemble.RandomForestClassifier, ensemble.RandomForestRegressor,
        tree.DecisionTreeClassifier, tree.DecisionTreeRegressor,
        ensemble.HistGradientBoostingClassifier,
        ensemble.HistGradientBoostingRegressor,
        binning._BinMapper, predictor.TreePredictor,
        ensemble.StackingClassifier, ensemble.StackingRegressor,
        neighbors.KNeighborsClassifier, neighbors.KNeighborsRegressor,
        neighbors.KDTree, neighbors.BallTree, _dist_metrics.EuclideanDistance64,
        ms.KFold, ms.StratifiedKFold, ms.GroupKFold,
        ms.StratifiedGroupKFold,
        link.IdentityLink, link.LogitLink, link.LogLink, link.HalfLogitLink,
        link.MultinomialLogit, link.Interval, loss.HalfBinomialLoss,
        loss.HalfMultinomialLoss, loss.HalfSquaredError, _bunch.Bunch,
    ]  # fmt: skip
    names = {_name(c) for c in classes}
    try:
        import xgboost

        names |= {
            _name(xgboost.XGBClassifier),
            _name(xgboost.XGBRegressor),
            _name(xgboost.Booster),
        }
    except ImportError:
        pass
    return frozenset(names)


@functools.cache
def allowed_types() -> dict[str, frozenset[str]]:
    """Node kind -> the exact ``module.Class`` names it may carry."""
    from sklearn._loss import _loss

    numpy_scalars = {f"numpy.{s}" for s in _NUMPY_SCALARS}
    primitives = {f"builtins.{p}" for p in _PRIMITIVES}
    losses = {
        f"{_loss.__name__}.{n}"
        for n in ("CyHalfBinomialLoss", "CyHalfMultinomialLoss", "CyHalfSquaredError")
    }
    sparse = {
        f"scipy.sparse._{fmt}.{fmt}_{kind}"
        for fmt in ("csr", "csc", "coo")
        for kind in ("matrix", "array")
    }
    return {
        "DictNode": frozenset(
            {"builtins.dict", "collections.OrderedDict", "sklearn.utils._bunch.Bunch"}
        ),
        "ListNode": frozenset({"builtins.list"}),
        "TupleNode": frozenset({"builtins.tuple"}),
        "SetNode": frozenset({"builtins.set"}),
        "SliceNode": frozenset({"builtins.slice"}),
        "JsonNode": frozenset(primitives),
        "BytesNode": frozenset({"builtins.bytes"}),
        "BytearrayNode": frozenset({"builtins.bytearray"}),
        "NdArrayNode": frozenset({"numpy.ndarray", *numpy_scalars}),
        "MaskedArrayNode": frozenset(
            {"numpy.ma.MaskedArray", "numpy.ma.core.MaskedArray"}
        ),
        "DTypeNode": frozenset({"numpy.dtype"}),
        "ObjectNode": _estimator_classes(),
        "TypeNode": frozenset(primitives | numpy_scalars),
        "FunctionNode": CALLABLES,
        "PartialNode": frozenset({"functools.partial"}),
        "LossNode": frozenset(losses),
        "TreeNode": frozenset({"sklearn.tree._tree.Tree"}),
        "RandomGeneratorNode": frozenset({"numpy.random._generator.Generator"}),
        "RandomStateNode": frozenset({"numpy.random.mtrand.RandomState"}),
        "SparseMatrixNode": frozenset(sparse),
        "CachedNode": frozenset(),  # a reference: carries no type of its own
    }


def _refuse(what: str) -> ValueError:
    return ValueError(
        f"model file: got {what}. Expected only the scikit-learn / xgboost types "
        "hybridml itself saves (a closed list). Refusing to load it; refit and "
        "save the model yourself, or ask its author for the data to do so."
    )


def read_schema(payload: bytes) -> dict:
    """The payload's ``schema.json``, after bounding its zip; no object built."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise _refuse(f"a pipeline that is not a skops archive ({exc})") from exc
    names = [info.filename for info in infos]
    if len(infos) > MAX_PAYLOAD_MEMBERS or len(set(names)) != len(names):
        raise _refuse(f"a pipeline archive of {len(infos)} members (or duplicates)")
    if sum(info.file_size for info in infos) > MAX_PAYLOAD_UNPACKED:
        raise _refuse("a pipeline archive that unpacks to over 4 GiB")
    if "schema.json" not in names:
        raise _refuse("a pipeline archive without schema.json")
    with archive.open("schema.json") as member:
        raw = member.read(MAX_SCHEMA_BYTES + 1)
    if len(raw) > MAX_SCHEMA_BYTES:
        raise _refuse("a pipeline schema over 256 MiB")
    try:
        schema = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _refuse(f"a pipeline schema that is not valid JSON ({exc})") from exc
    if not isinstance(schema, dict):
        raise _refuse("a pipeline schema that is not a JSON object")
    return schema


def audit_schema(schema: dict) -> list[str]:
    """Check every node of a skops schema; return the type names it uses.

    Raises ``ValueError`` naming the first node whose kind or type is not on
    the closed list, before skops builds anything.
    """
    from skops.io._protocol import PROTOCOL

    if schema.get("protocol") != PROTOCOL:
        raise _refuse(
            f"skops protocol {schema.get('protocol')!r} (expected {PROTOCOL})"
        )
    allowed = allowed_types()
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        stack.extend(node.values())
        if "__loader__" not in node:
            continue
        kind = node["__loader__"]
        if kind not in NODE_KINDS:
            raise _refuse(f"a {kind!r} node, which would call code the file names")
        if kind == "CachedNode":
            continue
        module, cls = node.get("__module__"), node.get("__class__")
        if not isinstance(module, str) or not isinstance(cls, str):
            raise _refuse(f"a {kind} node without a type name")
        name = f"{module}.{cls}"
        if name not in allowed[kind]:
            raise _refuse(f"type {name!r} in a {kind} node")
        if kind == "PartialNode":
            _check_partial(node)
        found.add(name)
    return sorted(found)


def _check_partial(node: dict) -> None:
    """``partial(check_array, dtype=..., ensure_all_finite=...)``, nothing else."""
    content = node.get("content")
    if not isinstance(content, dict):
        raise _refuse("a functools.partial node without content")
    func = content.get("func") or {}
    args = content.get("args") or {}
    kwds = content.get("kwds") or {}
    named = f"{func.get('__module__')}.{func.get('__class__')}"
    if func.get("__loader__") != "FunctionNode" or named not in CALLABLES:
        raise _refuse(f"functools.partial of {named!r}")
    if args.get("__loader__") != "TupleNode" or args.get("content"):
        raise _refuse("functools.partial with positional arguments")
    keys = kwds.get("content") if kwds.get("__loader__") == "DictNode" else None
    if not isinstance(keys, dict) or not set(keys) <= PARTIAL_KEYWORDS:
        raise _refuse(
            "functools.partial with keywords outside dtype, ensure_all_finite"
        )


# -- after loading: the index arrays scikit-learn trusts -----------------------


def check_loaded(obj: Any) -> None:
    """Bounds-check every tree, predictor, k-d tree and SVM inside ``obj``."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.neighbors import BallTree, KDTree
    from sklearn.svm._base import BaseLibSVM
    from sklearn.tree._tree import Tree

    seen: set[int] = set()
    stack: list[tuple[Any, Any]] = [(obj, None)]
    while stack:
        item, owner = stack.pop()
        if id(item) in seen or isinstance(item, (str, bytes, int, float, np.ndarray)):
            continue
        seen.add(id(item))
        if isinstance(item, Tree):
            _check_tree(item, getattr(owner, "n_features_in_", None))
        elif isinstance(item, TreePredictor):
            _check_predictor(item, getattr(owner, "n_features_in_", None))
        elif isinstance(item, (KDTree, BallTree)):
            _check_binary_tree(item)
        if isinstance(item, BaseLibSVM):
            _check_libsvm(item)
        if isinstance(item, dict):
            stack.extend((v, owner) for v in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((v, owner) for v in item)
        elif hasattr(item, "__dict__"):
            stack.extend((v, item) for v in vars(item).values())


def _bad(what: str) -> ValueError:
    return _refuse(f"{what} (an out-of-range index scikit-learn would read unchecked)")


def _check_tree(tree: Any, n_features: int | None) -> None:
    n = int(tree.node_count)
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    if not (len(left) == len(right) == len(feature) == tree.value.shape[0] == n):
        raise _bad("a decision tree whose arrays disagree in length")
    if n_features is not None and int(tree.n_features) != int(n_features):
        raise _bad("a decision tree for another number of features")
    index = np.arange(n)
    leaf = left == -1
    if np.any(leaf != (right == -1)) or np.any(feature[leaf] != -2):
        raise _bad("a decision tree with half-leaf nodes")
    inner = ~leaf
    for child in (left, right):
        if np.any((child[inner] <= index[inner]) | (child[inner] >= n)):
            raise _bad("a decision tree with a child index out of range")
    if np.any((feature[inner] < 0) | (feature[inner] >= tree.n_features)):
        raise _bad("a decision tree with a feature index out of range")


def _check_predictor(pred: Any, n_features: int | None) -> None:
    nodes = pred.nodes
    n = len(nodes)
    index = np.arange(n)
    inner = nodes["is_leaf"] == 0
    for side in ("left", "right"):
        child = nodes[side][inner].astype(np.int64)
        if np.any((child <= index[inner]) | (child >= n)):
            raise _bad("a gradient-boosting tree with a child index out of range")
    feature = nodes["feature_idx"][inner].astype(np.int64)
    if n_features is not None and np.any((feature < 0) | (feature >= n_features)):
        raise _bad("a gradient-boosting tree with a feature index out of range")
    cat = inner & (nodes["is_categorical"] != 0)
    bitsets = len(pred.raw_left_cat_bitsets)
    if np.any(nodes["bitset_idx"][cat].astype(np.int64) >= bitsets):
        raise _bad("a gradient-boosting tree with a category index out of range")


def _check_binary_tree(tree: Any) -> None:
    data, idx, node_data, bounds = tree.get_arrays()
    n, n_nodes = len(data), len(node_data)
    if np.any((idx < 0) | (idx >= n)) or len(idx) != n:
        raise _bad("a neighbours tree with a row index out of range")
    start, end = node_data["idx_start"], node_data["idx_end"]
    if np.any((start < 0) | (start > end) | (end > n)):
        raise _bad("a neighbours tree with a node range out of range")
    inner = np.flatnonzero(node_data["is_leaf"] == 0)
    if len(inner) and 2 * inner.max() + 2 >= n_nodes:
        raise _bad("a neighbours tree with a child node out of range")
    if bounds.shape[1:] != (n_nodes, data.shape[1]):
        raise _bad("a neighbours tree whose bounds disagree with its nodes")


def _check_libsvm(model: Any) -> None:
    if not hasattr(model, "support_"):
        return  # not fitted: nothing to read
    n_sv = len(model.support_)
    counts = np.asarray(model._n_support, dtype=np.int64)
    vectors = getattr(model, "support_vectors_", np.empty((0, 0)))
    classify = getattr(model, "_impl", "") in ("c_svc", "nu_svc")
    if (classify and counts.sum() != n_sv) or vectors.shape[0] != n_sv:
        raise _bad("a support vector machine whose counts disagree")
    if model.dual_coef_.shape[-1] != n_sv:
        raise _bad("a support vector machine whose coefficients disagree")

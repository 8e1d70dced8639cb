"""Double-underscore parameter routing for the Keras wrappers.

``KerasClassifier(build, model__hidden=32, optimizer__learning_rate=1e-3)``: the
part before ``__`` names where a value goes, the rest names the argument there.
This module knows the routes, splits a flat parameter dict by route, checks
argument names against what their target accepts (with a "did you mean" hint),
and turns a string / class / instance spec plus routed arguments into a fresh
Keras object. It imports nothing heavy; callers hand it the Keras modules.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# Where a ``<route>__<name>`` parameter goes.
ROUTES = (
    "model",  # the build callable
    "optimizer",  # instantiate the optimizer with these arguments
    "loss",  # instantiate the loss
    "metrics",  # metrics__<index>__<name>: instantiate one metric
    "callbacks",  # callbacks__<key>__<name>: instantiate one callback class
    "compile",  # extra model.compile arguments
    "fit",  # extra model.fit arguments
    "predict",  # extra model.predict arguments
)


def route_of(name: str) -> str | None:
    """The route of a ``<route>__<name>`` parameter, or None for a plain name."""
    head, sep, _ = name.partition("__")
    return head if sep and head in ROUTES else None


def routed(params: Mapping[str, Any], route: str) -> dict[str, Any]:
    """The arguments routed to ``route``, with the prefix removed."""
    prefix = route + "__"
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


def closest(name: str, candidates: Iterable[str]) -> str:
    """A " Did you mean ...?" hint, or an empty string when nothing is close."""
    match = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" Did you mean {match[0]!r}?" if match else ""


def signature_names(func: Callable) -> set[str] | None:
    """Keyword names ``func`` accepts, or None when it takes ``**kwargs``."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in parameters if p.kind in keyword}


def check_names(
    given: Iterable[str],
    accepted: set[str] | None,
    where: str,
    *,
    prefix: str = "",
    extra: Iterable[str] = (),
) -> None:
    """Raise a ValueError naming the first of ``given`` that is not accepted."""
    if accepted is None:
        return
    for name in given:
        if name not in accepted:
            hint = closest(prefix + name, [prefix + a for a in accepted] + [*extra])
            raise ValueError(
                f"{prefix}{name}: got an argument that {where} does not accept. "
                f"Expected one of {sorted(accepted)}.{hint}"
            )


def _class_names(cls: type) -> set[str]:
    """Keyword names declared by every ``__init__`` along a class's MRO."""
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names: set[str] = set()
    for klass in inspect.getmro(cls):
        if "__init__" in vars(klass) and klass is not object:
            try:
                parameters = inspect.signature(klass.__init__).parameters.values()
            except (TypeError, ValueError):
                continue
            names |= {p.name for p in parameters if p.kind in keyword}
    return names - {"self"}


def class_for_name(module: Any, name: str) -> type | None:
    """The class in a Keras module (``keras.losses`` ...) that a name means.

    Accepts class names (``"BinaryCrossentropy"``), function names
    (``"binary_crossentropy"``) and aliases Keras resolves (``"mse"``).
    """
    obj = getattr(module, name, None)
    if isinstance(obj, type):
        return obj
    classes = {
        attr.lower(): getattr(module, attr)
        for attr in dir(module)
        if isinstance(getattr(module, attr), type)
    }
    key = name.replace("_", "").lower()
    if key in classes:
        return classes[key]
    try:
        resolved = module.get(name)
    except (ValueError, TypeError):
        return None
    if inspect.isfunction(resolved):
        return classes.get(resolved.__name__.replace("_", "").lower())
    return None


def instantiate(
    spec: Any,
    kwargs: Mapping[str, Any],
    *,
    module: Any,
    route: str,
    fresh: bool,
) -> Any:
    """A Keras object from a string, class or instance ``spec`` and its arguments.

    Strings without arguments are returned unchanged (Keras resolves them, which
    keeps the special meaning of names such as ``"accuracy"``). Instances are
    returned as a fresh copy when ``fresh`` (optimizers, metrics and callbacks
    hold state; a copy keeps the user's object untouched), else unchanged.
    """
    if isinstance(spec, str):
        if not kwargs:
            return spec
        cls = class_for_name(module, spec)
        if cls is None:
            raise ValueError(
                f"{route}: got {spec!r} with routed arguments {sorted(kwargs)}. "
                f"Expected a name of a class in keras.{module.__name__.split('.')[-1]}."
                f" Pass the class itself instead of the name."
            )
    elif isinstance(spec, type):
        cls = spec
    else:
        if kwargs:
            raise ValueError(
                f"{route}__*: got routed arguments {sorted(kwargs)} for an "
                f"instance {spec!r}. Expected a string or class to instantiate. "
                f"Pass the class ({type(spec).__name__}) instead of an instance."
            )
        if not fresh:
            return spec
        if hasattr(spec, "get_config") and hasattr(spec, "from_config"):
            return type(spec).from_config(spec.get_config())
        return copy.deepcopy(spec)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        known = _class_names(cls)
        unknown = [name for name in kwargs if name not in known]
        if not unknown:
            raise
        hint = closest(f"{route}__{unknown[0]}", [f"{route}__{k}" for k in known])
        raise ValueError(
            f"{route}__{unknown[0]}: got an argument that {cls.__name__} does not "
            f"accept. Expected one of {sorted(known)}.{hint}"
        ) from exc


def instantiate_each(
    specs: Any,
    params: Mapping[str, Any],
    *,
    module: Any,
    route: str,
    fresh: bool,
) -> Any:
    """Instantiate every entry of a list (keys 0, 1, ...) or dict of specs.

    ``params`` holds the ``<key>__<name>`` arguments routed to ``route``.
    Returns a list for a list, and a list of the dict's values for a dict.
    A single spec (as in SciKeras, ``callbacks=EarlyStopping`` with
    ``callbacks__patience=2``) takes ``params`` unkeyed: a list of one.
    """
    if not isinstance(specs, (list, tuple, Mapping)):
        return [instantiate(specs, params, module=module, route=route, fresh=fresh)]
    if isinstance(specs, Mapping):
        items = [(str(key), spec) for key, spec in specs.items()]
    else:
        items = [(str(i), spec) for i, spec in enumerate(specs)]
    keys = [key for key, _ in items]
    for name in params:
        key = name.partition("__")[0]
        if key not in keys:
            hint = closest(f"{route}__{key}", [f"{route}__{k}" for k in keys])
            raise ValueError(
                f"{route}__{name}: got routed arguments for {key!r}, which is not "
                f"an entry of {route}. Expected one of the keys {keys}.{hint}"
            )
    return [
        instantiate(
            spec,
            routed(params, key),
            module=module,
            route=f"{route}__{key}",
            fresh=fresh,
        )
        for key, spec in items
    ]

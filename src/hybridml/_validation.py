"""The one home of parameter checks shared across the package.

Each check raises with the message shape used everywhere in hybridml:
``"<name>: got <value>. Expected <what>."``.
"""

from __future__ import annotations

import numbers
from typing import Any


def is_int(value: Any) -> bool:
    """Tell whether ``value`` is an integer (NumPy's included), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= minimum.

    A non-integer raises ``TypeError``; an integer below ``minimum``
    ``ValueError``.
    """
    if not is_int(value):
        raise TypeError(f"{name}: got {value!r}. Expected an integer >= {minimum}.")
    if value < minimum:
        raise ValueError(f"{name}: got {value!r}. Expected an integer >= {minimum}.")
    return int(value)


def split_names(value: Any) -> list[str]:
    """Names from ``"a,b"``, ``["a", "b,c"]`` or None: the one comma-list rule.

    Examples
    --------
    >>> split_names("a, b"), split_names(["a", "b,c"]), split_names(None)
    (['a', 'b'], ['a', 'b', 'c'], [])
    """
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out = []
    for item in items:
        if isinstance(item, str):
            out += [v.strip() for v in item.split(",") if v.strip()]
        else:
            out.append(item)
    return out

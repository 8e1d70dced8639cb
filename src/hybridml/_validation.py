"""The one home of parameter checks shared across the package.

Each check raises with the message shape used everywhere in hybridml:
``"<name>: got <value>. Expected <what>."``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np


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


def is_missing(item: Any) -> bool:
    """Tell whether one value is missing: None, NaN or ``pd.NA``."""
    if item is None:
        return True
    try:
        return bool(item != item)  # NaN and pd.NA
    except (TypeError, ValueError):
        return False


def check_labels_present(y: Any, name: str = "y") -> None:
    """Refuse class labels with missing values (None, NaN), naming the rows.

    Runs on ``y`` as given: ``np.asarray(["a", np.nan])`` would turn NaN into
    the string ``"nan"``, a new class. Sparse matrices are left to
    scikit-learn's own checks.
    """
    if y is None or hasattr(y, "toarray"):
        return
    values = np.asarray(y, dtype=object)
    if values.ndim == 0 or values.size == 0:
        return
    missing = np.frompyfunc(is_missing, 1, 1)(values).astype(bool)
    rows = np.flatnonzero(missing.reshape(len(missing), -1).any(axis=1))
    if len(rows):
        shown = rows[:10].tolist()
        more = f" (and {len(rows) - 10} more)" if len(rows) > 10 else ""
        value = values[missing][0]
        raise ValueError(
            f"{name}: got {value!r} in rows {shown}{more}. Expected a class label "
            "in every row. Drop those rows or fill their labels first."
        )

"""The one rule for guessing what a table column holds.

Used by the leaderboard's ``tabular="auto"`` and by the factories when they are
handed a DataFrame, so both read a column the same way:

1. booleans and pandas categoricals are ``"categorical"``;
2. numbers are ``"numeric"``, except an integer column with one distinct value
   per row (more than ``MAX_CATEGORIES`` rows), which is an ``"id"``;
3. strings (every non-missing value a ``str``) are ``"image"`` when every value
   ends with an image suffix, ``"text"`` when any value contains a space,
   ``"categorical"`` when they take at most ``MAX_CATEGORIES`` distinct values,
   and an ``"id"`` otherwise;
4. anything else (mixed objects) is ``"categorical"`` when it takes at most
   ``MAX_CATEGORIES`` distinct values, else an ``"id"``.

``"id"`` columns are not used as features (the leaderboard lists them as
ignored).
"""

from __future__ import annotations

from typing import Any

MAX_CATEGORIES = 20
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
KINDS = ("text", "image", "numeric", "categorical")


def column_kind(series: Any) -> str:
    """One of ``"text"``, ``"image"``, ``"numeric"``, ``"categorical"``, ``"id"``."""
    import pandas as pd

    types = pd.api.types
    if types.is_bool_dtype(series) or isinstance(series.dtype, pd.CategoricalDtype):
        return "categorical"
    if types.is_numeric_dtype(series):
        looks_like_id = (
            types.is_integer_dtype(series)
            and len(series) > MAX_CATEGORIES
            and series.nunique() == len(series)
        )
        return "id" if looks_like_id else "numeric"
    values = series.dropna()
    strings = values[values.map(lambda v: isinstance(v, str))]
    if len(strings) and len(strings) == len(values):
        if strings.str.lower().str.endswith(IMAGE_SUFFIXES).all():
            return "image"
        if strings.str.contains(" ").any():
            return "text"
    return "categorical" if values.nunique() <= MAX_CATEGORIES else "id"

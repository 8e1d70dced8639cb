"""The one home of the feature-block column names in the design matrix.

Backbone ``i``'s embedding columns are ``_hml{i}_0``, ``_hml{i}_1``, ...; the
classical image blocks are ``_hmlpixels_*`` and ``_hmlhog_*``. The leaderboard
builds these names, a model file stores them, and prediction reads them back.
"""

from __future__ import annotations

PREFIX = "_hml"


def block_key(index: int | str) -> str:
    """The column prefix of a feature block: ``_hml0_``, ``_hmlpixels_``.

    Examples
    --------
    >>> block_key(0), block_key("hog"), block_of("_hml0_12"), block_of("stars")
    ('_hml0_', '_hmlhog_', '_hml0_', None)
    """
    return f"{PREFIX}{index}_"


def block_of(column: object) -> str | None:
    """The block prefix a design-matrix column belongs to, or None."""
    if not isinstance(column, str) or not column.startswith(PREFIX):
        return None
    end = column.find("_", len(PREFIX))
    return column[: end + 1] if end > 0 else None

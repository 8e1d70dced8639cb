"""The leaderboard behind ``hybridml baseline``.

Reading and checking the table, features and heads, evaluation under
cross-validation and the report. The names below are imported lazily, so
``import hybridml.baseline`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "run_baseline": "run",
    "embed_frame": "embed_table",
    "format_leaderboard": "report",
    "write_report": "report",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)

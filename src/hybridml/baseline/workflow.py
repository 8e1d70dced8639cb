"""After the leaderboard: the report files, ``report.html`` and the saved model.

The CLI's ``baseline`` and ``demo`` call :func:`finish` and print what it
returns; :func:`hybridml.run_baseline` calls :func:`save_best` when given
``save_best=``. So Python users and the command line share one workflow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .finalize import finalize
from .saved import HybridModel, save_model


@dataclass(frozen=True)
class Finished:
    """What :func:`finish` wrote: the report folder, ``report.html``, the model."""

    folder: Path
    page: Path
    model: HybridModel | None = None
    model_path: Path | None = None
    rank: int = 1


def save_best(
    session: Any, path: str | os.PathLike, *, rank: int = 1, key: Any = None
) -> tuple[HybridModel, Path]:
    """Refit leaderboard ``rank`` on all rows and save it to ``path`` (``.hml``)."""
    model = finalize(session, rank)
    return model, save_model(model, path, key=key)


def finish(
    session: Any,
    output: str | os.PathLike,
    *,
    command: str,
    save_path: str | os.PathLike | None = None,
    rank: int = 1,
    key: Any = None,
) -> Finished:
    """Write the report files and ``report.html``; refit and save if asked."""
    from .html_report import write_html
    from .report import write_report

    folder = write_report(session.board, output)
    page = write_html(session, output, command)
    if save_path is None:
        return Finished(Path(folder), Path(page))
    model, path = save_best(session, save_path, rank=rank, key=key)
    return Finished(Path(folder), Path(page), model, path, rank)

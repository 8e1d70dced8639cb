"""The handlers of the ``hybridml`` sub-commands: call the public functions, format."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DEFAULT_OUTPUT = "hybridml-report"
DEMO_LIMIT = 2000  # measured: 2-5 min on 2 busy CPU cores; 4000 for all rows


def baseline(args: argparse.Namespace) -> int:
    from .._atomic import check_writable_folder
    from ..baseline import run_baseline

    check_writable_folder(args.output, "--output")  # before the CV run
    board = run_baseline(
        args.data,
        target=args.target,
        text=_split(args.text),
        image=_split(args.image),
        tabular=_tabular(args.tabular),
        groups=args.groups,
        backbones=_backbones(args),
        heads=args.heads,
        cv=args.cv,
        metric=args.metric,
        task=args.task,
        stack=args.stack,
        **_run_options(args),
    )
    return _report(board, args.output)


def demo(args: argparse.Namespace) -> int:
    from .._atomic import check_writable_folder
    from ..baseline import run_baseline
    from ..datasets import load_rotten_tomatoes

    check_writable_folder(args.output, "--output")
    print(
        "hybridml demo: which pretrained features + head best tell fresh from "
        f"rotten Rotten Tomatoes snippets ({args.limit} of the 4,000 shipped, "
        f"{args.cv}-fold CV, each film's reviews in one fold)?",
        file=sys.stderr,
    )
    board = run_baseline(
        load_rotten_tomatoes(),
        target="label",
        text="text",
        tabular=None,
        groups="movie",  # a film's reviews stay on one side of every split
        backbones=args.backbone or None,
        heads=args.heads,
        cv=args.cv,
        **_run_options(args),
    )
    return _report(board, args.output)


def _run_options(args: argparse.Namespace) -> dict:
    """Return the run_baseline options that ``baseline`` and ``demo`` share."""
    return {
        "cache": args.cache,
        "limit": args.limit,
        "random_state": args.seed,
        "n_jobs": args.n_jobs,
        "verbose": 0 if args.quiet else 1,
        "progress": not args.quiet,
    }


def _report(board, output: str) -> int:
    from ..baseline import format_leaderboard, write_report

    print(format_leaderboard(board))
    folder = write_report(board, output)
    print(
        f"\nreport: {folder}{os.sep} (leaderboard.csv, leaderboard.json, scores.png)"
        f"; total {board.attrs['elapsed_s']:.0f} s"
    )
    return 0


def embed(args: argparse.Namespace) -> int:
    from .._atomic import atomic_path, check_writable_file
    from ..baseline import embed_frame

    output = Path(args.output)
    if output.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise ValueError(
            f"--output: got {str(output)!r}. Expected a .parquet or .csv file "
            "name. Use e.g. -o embeddings.parquet."
        )
    check_writable_file(output, "--output")  # before any model loads
    # Finished batches go to the cache, so an interrupted run resumes. Without
    # --cache it lives next to the output and is removed once the file is written.
    cache = args.cache
    if cache is None:
        from ..cache.store import EmbeddingCache

        path = output.with_name(output.name + ".cache.sqlite")
        found = path.exists()
        cache = EmbeddingCache(path)
        if found:
            print(
                f"resuming from {path} ({len(cache)} rows already embedded)",
                file=sys.stderr,
            )
    start = time.perf_counter()
    frame = embed_frame(
        args.data,
        text=_split(args.text),
        image=_split(args.image),
        backbone=args.backbone,
        keep=_keep(args.keep),
        cache=cache,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:  # never a half-written file under the name
        if output.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    if args.cache is None:
        cache.close()
        _remove_cache(cache.path)
    print(
        f"wrote {output}: {len(frame)} rows x {frame.shape[1]} columns in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0


def datasets(args: argparse.Namespace) -> int:
    from .. import datasets
    from .._atomic import atomic_path, check_writable_file

    loaders = {
        name[len("load_") :]: getattr(datasets, name)
        for name in datasets.__all__
        if name.startswith("load_")
    }
    if args.name is None:
        width = max(map(len, loaders))
        for name, loader in loaders.items():
            summary = (loader.__doc__ or "").strip().splitlines()[0]
            print(f"{name.ljust(width)}  {summary}")
        print("\nexport one as CSV: hybridml datasets NAME -o NAME.csv")
        return 0
    if args.name not in loaders:
        import difflib

        close = difflib.get_close_matches(args.name, list(loaders), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"dataset: got {args.name!r}. Expected one of {', '.join(loaders)}.{hint}"
        )
    output = check_writable_file(args.output or f"{args.name}.csv", "--output")
    frame = loaders[args.name]()
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        frame.to_csv(tmp, index=False)
    print(f"wrote {output}: {len(frame)} rows, columns {', '.join(frame.columns)}")
    return 0


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or () for v in item.split(",") if v.strip()]


def _tabular(value: str) -> str | list[str] | None:
    if value.strip().lower() == "none":
        return None
    return "auto" if value.strip() == "auto" else _split([value])


def _keep(value: str) -> str | list[str] | None:
    if value.strip().lower() == "none":
        return None
    return "all" if value.strip() == "all" else _split([value])


def _backbones(args: argparse.Namespace) -> list[str] | None:
    if not args.backbone:
        return None
    if [b.lower() for b in args.backbone] == ["none"]:
        return []
    return list(args.backbone)


def _remove_cache(cache: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-lock"):
        path = cache.with_name(cache.name + suffix)
        if path.is_file():
            path.unlink()

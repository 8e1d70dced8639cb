"""The ``hybridml`` command: parses arguments, calls the public functions, formats.

Subcommands: ``baseline`` (the leaderboard of :func:`hybridml.run_baseline`),
``embed`` (embeddings to a Parquet file, resumable), ``demo`` (the baseline on
the shipped Rotten Tomatoes data) and ``datasets`` (list or export the shipped
data). Errors a person can act on print ``error: ...`` and exit with status 1;
usage errors exit with status 2 (argparse).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .._imports import quiet_runtime

__all__ = ["main"]

DEFAULT_OUTPUT = "hybridml-report"
DEMO_LIMIT = 2000  # measured: 2-5 min on 2 busy CPU cores; 4000 for all rows
# Errors raised on purpose with a message meant for people; anything else is a
# bug and keeps its traceback.
_USER_ERRORS = (ValueError, TypeError, FileNotFoundError, ImportError, KeyError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hybridml`` command line and return its exit status.

    Parameters
    ----------
    argv : sequence of str or None, default=None
        The arguments after the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    int
        0 on success, 1 on an error the user can fix (printed to stderr as
        ``error: ...``), 2 on a usage error, 130 when interrupted.

    Examples
    --------
    >>> from hybridml.cli import main
    >>> main(["baseline", "no-such-file.csv", "--target", "label"])
    1
    """
    quiet_runtime()
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except _USER_ERRORS as exc:
        if os.environ.get("HYBRIDML_DEBUG"):
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 1


# -- subcommands -------------------------------------------------------------


def _baseline(args: argparse.Namespace) -> int:
    from ..baseline.run import run_baseline

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
        finetune=args.finetune,
        **_run_options(args),
    )
    return _report(board, args.output)


def _demo(args: argparse.Namespace) -> int:
    from ..baseline.run import run_baseline
    from ..datasets import load_rotten_tomatoes

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
    from ..baseline.run import format_leaderboard, write_report

    print(format_leaderboard(board))
    folder = write_report(board, output)
    print(
        f"\nreport: {folder}{os.sep} (leaderboard.csv, leaderboard.json, scores.png)"
        f"; total {board.attrs['elapsed_s']:.0f} s"
    )
    return 0


def _embed(args: argparse.Namespace) -> int:
    from ..baseline.run import embed_frame

    output = Path(args.output)
    if output.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise ValueError(
            f"--output: got {str(output)!r}. Expected a .parquet or .csv file "
            "name. Use e.g. -o embeddings.parquet."
        )
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
    if output.suffix.lower() == ".csv":
        frame.to_csv(output, index=False)
    else:
        frame.to_parquet(output, index=False)
    if args.cache is None:
        cache.close()
        _remove_cache(cache.path)
    print(
        f"wrote {output}: {len(frame)} rows x {frame.shape[1]} columns in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from .. import datasets

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
    frame = loaders[args.name]()
    output = Path(args.output or f"{args.name}.csv")
    frame.to_csv(output, index=False)
    print(f"wrote {output}: {len(frame)} rows, columns {', '.join(frame.columns)}")
    return 0


# -- parsing -----------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridml",
        description="Pretrained Keras/keras-hub backbones + scikit-learn heads.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "baseline",
        help="leaderboard of backbones x heads vs classical baselines under CV",
        description="Cross-validate pretrained embeddings x classical heads, "
        "classical baselines and a stack of the best on a CSV/Parquet table.",
    )
    p.add_argument("data", help="CSV or Parquet file")
    p.add_argument("--target", required=True, help="column to predict")
    _columns(p)
    p.add_argument(
        "--tabular",
        default="auto",
        help="tabular feature columns: 'auto' (default), 'none', or a list a,b,c",
    )
    p.add_argument(
        "--groups",
        metavar="COL",
        help="keep rows sharing this column's value in one fold (grouped CV)",
    )
    p.add_argument(
        "--backbone",
        action="append",
        metavar="SPEC",
        help="preset name or preset folder; repeat for several (default: "
        "all_minilm_l6_v2_en for text, efficientnet_lite0 for images); "
        "'none' for classical baselines only",
    )
    _common(p)
    p.add_argument(
        "--task", default="auto", choices=("auto", "classification", "regression")
    )
    p.add_argument(
        "--stack",
        type=int,
        default=3,
        metavar="K",
        help="stack the K best models (0: no stack; default 3)",
    )
    p.add_argument(
        "--metric", help="scikit-learn scorer name (default: accuracy or r2)"
    )
    p.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="use a stratified random subset of N rows",
    )
    p.add_argument(
        "--finetune",
        action="store_true",
        help="add 'tuned' rows: each text backbone fine-tuned contrastively "
        "(SetFit-style) inside each fold, then logistic regression",
    )
    p.set_defaults(handler=_baseline)

    p = sub.add_parser(
        "embed",
        help="write embeddings of text or image columns to Parquet (resumable)",
        description="Embed text or image columns and write them with the other "
        "columns to a Parquet (or CSV) file. Finished batches are cached, so an "
        "interrupted run resumes where it stopped.",
    )
    p.add_argument("data", help="CSV or Parquet file")
    _columns(p)
    p.add_argument("-o", "--output", required=True, help="output .parquet or .csv")
    p.add_argument(
        "--backbone",
        metavar="SPEC",
        help="preset name or folder (default per modality)",
    )
    p.add_argument(
        "--keep",
        default="all",
        help="columns copied to the output: 'all' (default), 'none' or a list a,b,c",
    )
    p.add_argument(
        "--cache",
        metavar="PATH",
        help="SQLite cache file or folder to keep (default: a temporary "
        "cache next to the output, removed when done)",
    )
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_embed)

    p = sub.add_parser(
        "demo",
        help="run the baseline on the shipped Rotten Tomatoes snippets",
        description="Leaderboard on the shipped Rotten Tomatoes snippets with the "
        "offline all-MiniLM-L6-v2 backbone, TF-IDF and a stack.",
    )
    p.add_argument(
        "--backbone",
        action="append",
        metavar="SPEC",
        help="text backbone (default all_minilm_l6_v2_en, offline); repeatable",
    )
    _common(p)
    p.add_argument(
        "--limit",
        type=int,
        default=DEMO_LIMIT,
        metavar="N",
        help=f"rows used (default {DEMO_LIMIT}; 4000 for all)",
    )
    p.set_defaults(handler=_demo)

    p = sub.add_parser("datasets", help="list the shipped datasets or export one")
    p.add_argument("name", nargs="?", help="dataset to export as CSV")
    p.add_argument("-o", "--output", help="CSV file (default NAME.csv)")
    p.set_defaults(handler=_datasets)
    return parser


def _columns(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--text",
        action="append",
        metavar="COL",
        help="text column (repeat or comma-separate for several)",
    )
    p.add_argument(
        "--image",
        action="append",
        metavar="COL",
        help="image-path column (repeat or comma-separate)",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--heads",
        default=None,
        help="comma-separated heads among logreg,svc,rf,xgb,knn (default: all)",
    )
    p.add_argument(
        "--cv", type=int, default=5, help="cross-validation folds (default 5)"
    )
    p.add_argument(
        "--cache",
        metavar="PATH",
        help="keep embeddings in this SQLite file or folder across runs",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help=f"report folder (default ./{DEFAULT_OUTPUT})",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="print only the leaderboard"
    )
    p.add_argument("--n-jobs", type=int, dest="n_jobs", help="folds fitted in parallel")


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

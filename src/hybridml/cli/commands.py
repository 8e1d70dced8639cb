"""The handlers of the ``hybridml`` sub-commands: call the public functions, format."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .._validation import split_names

DEFAULT_OUTPUT = "hybridml-report"
DEMO_LIMIT = 2000  # measured: 2-5 min on 2 busy CPU cores; 4000 for all rows


def baseline(args: argparse.Namespace) -> int:
    from .._atomic import check_writable_folder
    from ..baseline.run import Settings, run_steps

    check_writable_folder(args.output, "--output")  # before the CV run
    _check_save_path(args, inputs=[args.data])
    settings = Settings(
        target=args.target,
        text=split_names(args.text),
        image=split_names(args.image),
        tabular=_tabular(args.tabular),
        groups=args.groups,
        backbones=_backbones(args),
        heads=args.heads,
        metric=args.metric,
        task=args.task,
        stack=args.stack,
        finetune=args.finetune,
        **_shared(args),
    )
    return _finish(run_steps(args.data, settings), args)


def demo(args: argparse.Namespace) -> int:
    from .._atomic import check_writable_folder
    from ..baseline.run import Settings, run_steps
    from ..datasets import load_rotten_tomatoes

    check_writable_folder(args.output, "--output")
    _check_save_path(args)
    print(
        "hybridml demo: which pretrained features + head best tell fresh from "
        f"rotten Rotten Tomatoes snippets ({args.limit} of the 4,000 shipped, "
        f"{args.cv}-fold CV, each film's reviews in one fold)?",
        file=sys.stderr,
    )
    settings = Settings(
        target="label",
        text="text",
        tabular=None,
        groups="movie",  # a film's reviews stay on one side of every split
        backbones=args.backbone or None,
        heads=args.heads,
        **_shared(args),
    )
    return _finish(run_steps(load_rotten_tomatoes(), settings), args)


def _shared(args: argparse.Namespace) -> dict:
    """The :class:`~hybridml.baseline.run.Settings` fields of both commands."""
    return {
        "cv": args.cv,
        "cache": args.cache,
        "limit": args.limit,
        "random_state": args.seed,
        "n_jobs": args.n_jobs,
        "verbose": 0 if args.quiet else 1,
        "progress": not args.quiet,
        "tune": not args.no_tune,
    }


def embed(args: argparse.Namespace) -> int:
    from ..baseline.embed_table import embed_file

    output = _table_output(
        args.output, ".parquet or .csv", "embeddings.parquet", [args.data]
    )
    start = time.perf_counter()
    frame = embed_file(
        args.data,
        output,
        text=split_names(args.text),
        image=split_names(args.image),
        backbone=args.backbone,
        keep=_keep(args.keep),
        cache=args.cache,
        batch_size=args.batch_size,
        progress=not args.quiet,
        say=lambda line: print(line, file=sys.stderr),
    )
    print(
        f"wrote {output}: {len(frame)} rows x {frame.shape[1]} columns in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0


def datasets(args: argparse.Namespace) -> int:
    from .. import datasets
    from ..baseline.table import write_table

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
    output = _table_output(args.output or f"{args.name}.csv", ".csv", "wine.csv")
    frame = loaders[args.name]()
    write_table(frame, output)
    print(f"wrote {output}: {len(frame)} rows, columns {', '.join(frame.columns)}")
    return 0


def serve(args: argparse.Namespace) -> int:
    from ..serve import run

    options = vars(args).copy()
    for name in ("command", "handler", "model"):
        options.pop(name)
    run(args.model, **options)
    return 0


def _tabular(value: str) -> str | list[str] | None:
    if value.strip().lower() == "none":
        return None
    return "auto" if value.strip() == "auto" else split_names([value])


def _keep(value: str) -> str | list[str] | None:
    if value.strip().lower() == "none":
        return None
    return "all" if value.strip() == "all" else split_names([value])


def _backbones(args: argparse.Namespace) -> list[str] | None:
    if not args.backbone:
        return None
    if [b.lower() for b in args.backbone] == ["none"]:
        return []
    return list(args.backbone)


# -- from the leaderboard to a model: report.html, --save-best, predict --------


def _finish(session, args: argparse.Namespace) -> int:
    """Print the leaderboard; the library writes the reports and the model."""
    from ..baseline import format_leaderboard
    from ..baseline.tuning import describe
    from ..baseline.workflow import finish

    board = session.board
    print(format_leaderboard(board))
    done = finish(
        session,
        args.output,
        command=_command_line(args),
        save_path=args.save_best,
        rank=args.save if args.save is not None else 1,
        key=args.key,
    )
    print(
        f"\nreport: {done.folder}{os.sep} (leaderboard.csv, leaderboard.json, "
        f"scores.png); total {board.attrs['elapsed_s']:.0f} s"
    )
    print(describe(board.attrs.get("tuning") or [], not args.no_tune))
    print(f"report.html: {done.page}")
    if done.model is not None:
        row = done.model.row
        print(
            f"saved rank {done.rank} ({row['features']} + {row['head']}, "
            f"{row['metric']} {row['mean']:.3f} +/- {row['std']:.3f} in CV), "
            f"refitted on all {len(session.X)} rows, to {done.model_path}"
            + (" (signed)" if _key_set(args) else "")
        )
    return 0


def _key_set(args: argparse.Namespace) -> bool:
    from ..baseline.archive import resolve_key

    return resolve_key(args.key) is not None


def _check_save_path(args: argparse.Namespace, inputs: list = ()) -> None:
    """Check --save / --save-best (and the key) before the run, not after it."""
    from ..baseline.archive import resolve_key
    from ..baseline.saved import check_model_path

    if args.save is not None and args.save_best is None:
        raise ValueError(
            f"--save: got {args.save} without --save-best PATH. Expected both: "
            "--save RANK names the row, --save-best PATH the file. Add --save-best."
        )
    if args.save_best is not None:
        path = check_model_path(args.save_best, "--save-best")
        from .._atomic import check_output_file

        check_output_file(path, "--save-best", inputs)
        resolve_key(args.key)


def _command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, every option spelled out."""
    import shlex

    words = ["hybridml", args.command]
    if getattr(args, "data", None) is not None:
        words.append(str(args.data))
    for key, value in sorted(vars(args).items()):
        if key in ("command", "handler", "data", "key") or value in (None, False, []):
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            for item in value:
                words += [flag, str(item)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def predict(args: argparse.Namespace) -> int:
    from ..baseline.predict import prediction_frame
    from ..baseline.saved import load_model
    from ..baseline.table import write_table

    inputs = [args.model, args.data]
    output = (
        "-"
        if args.output == "-"
        else _table_output(args.output, ".csv or .parquet", "predictions.csv", inputs)
    )
    model = load_model(args.model, key=args.key, allow_download=args.allow_download)
    frame = prediction_frame(
        model,
        args.data,
        proba=args.proba,
        keep=split_names(args.keep),
        cache=args.cache,
    )
    write_table(frame, output)
    row = model.row
    print(
        f"wrote {output if output != '-' else 'standard output'}: {len(frame)} "
        f"predictions of {model.roles['target']!r} by {row['features']} + "
        f"{row['head']} ({row['metric']} {row['mean']:.3f} in CV)",
        file=sys.stderr if output == "-" else sys.stdout,
    )
    return 0


def _table_output(path: str, kinds: str, example: str, inputs: list = ()) -> Path:
    """The -o path of a table: .csv or .parquet, a new or regular file, not an
    input; checked before any model loads.
    """
    from .._atomic import check_output_file

    output = Path(path)
    if output.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ValueError(
            f"--output: got {str(output)!r}. Expected a {kinds} file name. "
            f"Use e.g. -o {example}."
        )
    return check_output_file(output, "--output", inputs)

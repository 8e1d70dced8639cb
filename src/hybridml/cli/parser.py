"""The argument parser of the ``hybridml`` command: one builder per sub-command."""

from __future__ import annotations

import argparse
from typing import Any

from .._heads import HEADS
from . import commands
from .commands import DEFAULT_OUTPUT, DEMO_LIMIT


def build_parser() -> argparse.ArgumentParser:
    """The parser of every sub-command, each with its handler as ``handler``."""
    parser = argparse.ArgumentParser(
        prog="hybridml",
        description="Pretrained Keras/keras-hub backbones + scikit-learn heads.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_baseline(sub)
    _add_embed(sub)
    _add_demo(sub)
    _add_datasets(sub)
    _add_predict(sub)
    _add_serve(sub)
    return parser


def _add_baseline(sub: Any) -> None:
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
        nargs="?",
        const="contrastive,end_to_end",
        default=False,
        metavar="KINDS",
        help="add rows whose text backbone is fine-tuned inside each fold: "
        "'contrastive' (SetFit-style tuner + logistic regression), "
        "'end_to_end' (backbone + classification head), or both (the default "
        "when the flag has no value); slow on a CPU",
    )
    p.set_defaults(handler=commands.baseline)


def _add_embed(sub: Any) -> None:
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
    p.set_defaults(handler=commands.embed)


def _add_demo(sub: Any) -> None:
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
    p.set_defaults(handler=commands.demo)


def _add_datasets(sub: Any) -> None:
    p = sub.add_parser("datasets", help="list the shipped datasets or export one")
    p.add_argument("name", nargs="?", help="dataset to export as CSV")
    p.add_argument("-o", "--output", help="CSV file (default NAME.csv)")
    p.set_defaults(handler=commands.datasets)


def _add_serve(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a saved model over HTTP, batching concurrent requests",
        description="Load a model saved by baseline --save-best once, warm it, "
        "and answer POST /predict (plus /schema, /health, /ready, /metrics, "
        "/docs and a page at /). No auth, no TLS: see the README before "
        'exposing it. Needs pip install "hybridml[serve]".',
    )
    p.add_argument("model", help=".hml file written by baseline --save-best")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="default 8000")
    p.add_argument(
        "--max-batch",
        type=int,
        default=64,
        dest="max_batch",
        help="most rows per model call (default 64; 1: no batching)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        dest="max_wait_ms",
        help="how long a request waits for others while requests overlap (default 5)",
    )
    p.add_argument("--workers", type=int, default=1, help="server processes")
    p.add_argument(
        "--max-rows",
        type=int,
        default=1000,
        dest="max_rows",
        help="most rows per request (default 1000)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=1 << 20,
        dest="max_body_bytes",
        help="largest body (default 1 MiB)",
    )
    p.add_argument(
        "--timeout-s",
        type=float,
        default=30.0,
        dest="timeout_s",
        help="answer 504 after this many seconds (default 30)",
    )
    _key(p, "refuse the model unless its HMAC verifies under this secret")
    _allow_download(p)
    p.set_defaults(handler=commands.serve)  # fmt: skip


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
        help=f"comma-separated heads among {','.join(HEADS)} (default: all)",
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
        "--report-dir",
        "--output",
        dest="output",
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help=f"report folder (default ./{DEFAULT_OUTPUT}); --output is its older "
        "name (a folder here, while embed / predict -o name a file)",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="print only the leaderboard"
    )
    p.add_argument("--n-jobs", type=int, dest="n_jobs", help="folds fitted in parallel")
    _saving(p)


def _saving(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--save-best",
        metavar="PATH",
        help="refit the best row on all rows and save it to PATH (.hml)",
    )
    p.add_argument(
        "--save",
        type=int,
        metavar="RANK",
        help="with --save-best: save the row of this rank instead of the best",
    )
    _key(p, "sign the saved model with an HMAC under this secret")
    p.add_argument(
        "--no-tune",
        action="store_true",
        help="keep the heads' defaults (default: tune C / alpha / k by inner CV)",
    )


def _add_predict(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="apply a model saved by baseline --save-best to new rows",
        description="Read the columns a saved model was trained on, embed them "
        "with the same backbone (offline) and write one prediction per row.",
    )
    p.add_argument("model", help=".hml file written by baseline --save-best")
    p.add_argument("data", help="CSV or Parquet file with the same columns")
    p.add_argument(
        "-o", "--output", required=True, help="output .csv or .parquet; - for stdout"
    )
    p.add_argument("--proba", action="store_true", help="add class probabilities")
    p.add_argument(
        "--keep",
        action="append",
        metavar="COL",
        help="copy this column (e.g. an id) into the output; repeatable",
    )
    p.add_argument(
        "--cache", metavar="PATH", help="EmbeddingCache SQLite file or folder"
    )
    _key(p, "refuse the model unless its HMAC verifies under this secret")
    _allow_download(p)
    p.set_defaults(handler=commands.predict)


def _allow_download(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-download",
        action="store_true",
        dest="allow_download",
        help="let the backbones the model names download (default: offline "
        "copies and local folders only)",
    )


def _key(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--key",
        metavar="SECRET",
        help=f"{what} (default: $HYBRIDML_MODEL_KEY, which keeps the secret out "
        "of your shell history and process list)",
    )

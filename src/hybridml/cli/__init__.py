"""The ``hybridml`` command: parses arguments, calls the public functions, formats.

Subcommands: ``baseline`` (the leaderboard of :func:`hybridml.run_baseline`),
``embed`` (embeddings to a Parquet file, resumable), ``demo`` (the baseline on
the shipped Rotten Tomatoes data) and ``datasets`` (list or export the shipped
data). Errors a person can act on print ``error: ...`` and exit with status 1;
usage errors exit with status 2 (argparse).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .._imports import quiet_runtime
from .parser import build_parser

__all__ = ["main"]

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
    parser = build_parser()
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

"""The ``hybridml`` command: parses arguments, calls the public functions, formats.

Subcommands: ``baseline`` (the leaderboard of :func:`hybridml.run_baseline`),
``embed`` (embeddings to a Parquet file, resumable), ``demo`` (the baseline on
the shipped Rotten Tomatoes data) and ``datasets`` (list or export the shipped
data). Errors a person can act on print ``error: ...`` and exit with status 1;
usage errors exit with status 2 (argparse).
"""

from __future__ import annotations

import errno
import os
import sys
import warnings
from collections.abc import Sequence

from .._imports import quiet_runtime
from .parser import build_parser

__all__ = ["main"]

# Raised on purpose by hybridml with a message meant for people. These count as
# user errors only when hybridml itself raised them (see _user_message): the
# same types from deep inside a library, and every other type (KeyError,
# IndexError, AttributeError, ...), are bugs and keep their traceback.
_DELIBERATE = (ValueError, TypeError, ImportError)


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
        with warnings.catch_warnings():  # restores the user's hook afterwards
            warnings.showwarning = _show_warning
            return args.handler(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = _user_message(exc)
        if message is None or os.environ.get("HYBRIDML_DEBUG"):
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1


def _user_message(exc: BaseException) -> str | None:
    """The one-line message for an error the user can fix, else ``None`` (a bug)."""
    ours = isinstance(exc, OSError) and exc.strerror is None  # FileNotFoundError(msg)
    if (ours or isinstance(exc, _DELIBERATE)) and (
        _raised_by_hybridml(exc) or _house_format(str(exc))
    ):
        return _one_line(str(exc))
    module = type(exc).__module__ or ""
    if module == "PIL" or module.startswith("PIL."):
        return _one_line(
            f"image: {exc}. Expected a readable image of a sane size. Replace or "
            "resize the file, or drop its row."
        )
    if isinstance(exc, OSError):  # a file: missing, unwritable, disk full, ...
        return _os_message(exc)
    if module == "sqlite3" or module.startswith("sqlite3."):
        return _one_line(
            f"cache database: {exc}. Expected a writable SQLite file of "
            "hybridml's. Check --cache (a folder or a .sqlite file you can write) "
            "and the free disk space."
        )
    return None


def _raised_by_hybridml(exc: BaseException) -> bool:
    """Whether the innermost frame of the traceback is hybridml's own code."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(here + os.sep)


def _house_format(message: str) -> bool:
    """Whether a message reads "<what>: got <value>. Expected <what>. <fix>".

    Our errors re-raised by joblib from a worker process no longer end in
    hybridml's code; their wording still tells them from a library's.
    """
    got = message.find(": got ")
    return got > 0 and message.find(". Expected ", got) > got


_OS_FIXES = {
    errno.EACCES: "Choose a path you can write to, or fix its permissions.",
    errno.EPERM: "Choose a path you can write to, or fix its permissions.",
    errno.EROFS: "The file system is read-only. Choose another path.",
    errno.ENOSPC: "The disk is full. Free some space or write elsewhere.",
    errno.EDQUOT: "The disk quota is used up. Free some space or write elsewhere.",
    errno.EEXIST: "Something of that name is in the way. Choose another path.",
    errno.ENOTDIR: "A part of the path is a file, not a folder. Fix the path.",
    errno.EISDIR: "That path is a folder. Give a file name.",
    errno.ENOENT: "Check the path and the working directory.",
}


def _os_message(exc: OSError) -> str:
    what = exc.strerror or str(exc) or type(exc).__name__
    where = f" {os.fspath(exc.filename)!r}" if exc.filename is not None else ""
    fix = _OS_FIXES.get(exc.errno, "Check the path, its permissions and free space.")
    return _one_line(f"file{where}: {what}. {fix}")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Print a warning as one ``warning: ...`` line (no source line)."""
    print(f"warning: {_one_line(str(message))}", file=file or sys.stderr)


def _one_line(message: str) -> str:
    return " ".join(message.split())

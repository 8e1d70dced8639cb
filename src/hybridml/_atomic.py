"""Writing files and folders so that a reader never sees half of one.

Everything hybridml writes under a name a user chose, or in its own cache, goes
through here: the content is written to a temporary name beside the target
(same file system) and moved into place with one ``os.replace`` / ``os.rename``,
so an interrupted run, a full disk or a second process never leaves a
truncated file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place on success.

    On an exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    kind = _special_kind(target)
    if kind is not None:
        raise ValueError(
            f"output: got {str(target)!r}, which is {kind}. Expected a regular "
            "file or a new name. Choose another name."
        )
    # the target's extension last, so writers that go by it (savefig) still do
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, _file_mode(target))  # mkstemp's 0600 is not a default
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def _file_mode(target: Path) -> int:
    """The mode a plain ``open(target, "w")`` would give (or target's own)."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_folder(
    folder: str | os.PathLike,
    fill: Callable[[Path], None],
    *,
    is_complete: Callable[[Path], bool],
    merge: bool = False,
    last: str | None = None,
) -> Path:
    """Build ``folder`` with ``fill(tmp)`` in a sibling and rename it into place.

    If another process finished the folder first (``is_complete(folder)``), its
    copy is kept and ours dropped. With ``merge=True`` a folder that exists with
    other content (a user's) gets our files moved in one by one, the file named
    ``last`` (a completion marker) after all the others.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        out = tmp / "out"
        out.mkdir()
        fill(out)
        try:
            os.rename(out, folder)  # atomic; fails if folder exists and is not empty
        except OSError:
            if is_complete(folder):
                return folder
            if not merge:
                raise
            folder.mkdir(parents=True, exist_ok=True)
            for item in sorted(out.iterdir(), key=lambda p: (p.name == last, p.name)):
                os.replace(item, folder / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def check_output_file(
    target: str | os.PathLike, what: str, inputs: Sequence[Any] = ()
) -> Path:
    """Check that ``target`` may be written as a file (before any long work).

    Allowed: a new name, or an existing regular file. Refused with a one-line
    error naming ``what`` (e.g. ``"--output"``): a folder, a symlink, a FIFO,
    a device or socket (replacing one would destroy what it points to), a path
    naming any of ``inputs`` (the user's own data or model), and a folder that
    cannot be written (probed with a temporary file that is removed at once).
    """
    target = Path(target).expanduser()
    kind = _special_kind(target)
    if kind is not None:
        raise ValueError(
            f"{what}: got {str(target)!r}, which is {kind}. Expected a new file "
            "name or a regular file to replace. Choose another name (to print "
            "a table, pass - where the command accepts it)."
        )
    for item in inputs:
        if isinstance(item, (str, os.PathLike)) and _same_file(target, Path(item)):
            raise ValueError(
                f"{what}: got {str(target)!r}, which is also an input of this "
                "command. Expected a new file name, so your input is never "
                "overwritten. Choose another output name."
            )
    _probe_folder(target.parent, what, target)
    return target


def check_writable_file(target: str | os.PathLike, what: str) -> Path:
    """:func:`check_output_file` with no inputs to protect."""
    return check_output_file(target, what)


def _special_kind(target: Path) -> str | None:
    """What ``target`` is if it exists and is not a regular file, else None."""
    try:
        mode = os.lstat(target).st_mode
    except OSError:
        return None
    for test, kind in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.expanduser().resolve() or (
            a.exists() and b.exists() and os.path.samefile(a, b)
        )
    except OSError:
        return False


def check_writable_folder(folder: str | os.PathLike, what: str) -> Path:
    """Check that files can be written inside ``folder`` (made later if missing)."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"{what}: got {str(folder)!r}, which is a file. Expected a folder "
            "(created if missing). Choose another name or move the file away."
        )
    _probe_folder(folder, what, folder)
    return folder


def _probe_folder(folder: Path, what: str, target: Path) -> None:
    """Write and remove a probe file in the nearest existing folder; create none."""
    part = folder
    while not part.exists() and part != part.parent:
        part = part.parent
    if not part.is_dir():
        raise ValueError(
            f"{what}: got {str(target)!r}, but {str(part)!r} is a file, not a "
            "folder. Expected a path whose folders are folders. Choose another "
            "path."
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".hybridml-probe-", dir=part)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(
            f"{what}: got {str(target)!r}, which cannot be written ({reason}: "
            f"{str(part)!r}). Expected a path in a folder you can write to. "
            "Choose another path or fix the folder's permissions."
        ) from exc

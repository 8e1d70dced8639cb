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
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place on success.

    On an exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
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


def check_writable_file(target: str | os.PathLike, what: str) -> Path:
    """Check that a file can be written at ``target`` (before any long work).

    Probes the nearest existing folder with a temporary file that is removed
    at once; creates nothing and leaves ``target`` untouched. Raises a one-line
    error naming ``what`` (e.g. ``"--output"``) and the fix.
    """
    target = Path(target).expanduser()
    if target.is_dir():
        raise ValueError(
            f"{what}: got {str(target)!r}, which is a folder. Expected a file "
            "name. Add a file name, e.g. out/embeddings.parquet."
        )
    _probe_folder(target.parent, what, target)
    return target


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

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
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


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

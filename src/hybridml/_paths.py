"""Where hybridml keeps files it makes for itself (converted models, images)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of hybridml's on-disk cache (converted models, image files).

    ``$HYBRIDML_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/hybridml``, else
    ``~/.cache/hybridml``. Not created here.
    """
    explicit = os.environ.get("HYBRIDML_CACHE_DIR")
    if explicit:
        root, name = Path(explicit).expanduser(), "HYBRIDML_CACHE_DIR"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
        root, name = base / "hybridml", "XDG_CACHE_HOME" if xdg else "HOME"
    for part in (root, *root.parents):
        if part.exists():
            if not part.is_dir():
                raise ValueError(
                    f"hybridml's cache folder: got {str(root)!r} (from ${name}), "
                    f"but {str(part)!r} is a file. Expected a folder. Point "
                    "HYBRIDML_CACHE_DIR at a folder (it is created if missing)."
                )
            break
    return root

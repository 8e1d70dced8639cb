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
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hybridml"

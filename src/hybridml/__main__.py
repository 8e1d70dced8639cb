"""``python -m hybridml``: the same command line as ``hybridml``."""

from __future__ import annotations

import sys

from hybridml.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""Where msakit keeps what it generates: ``$MSAKIT_CACHE`` or ``~/.cache/msakit``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where generated data is kept: ``$MSAKIT_CACHE`` or ``~/.cache/msakit``."""
    return Path(os.environ.get("MSAKIT_CACHE", Path.home() / ".cache" / "msakit"))


__all__ = ["cache_dir"]

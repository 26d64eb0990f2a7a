"""``python -m models train|evaluate|sweep-lr|sweep-epochs`` (see `models.cli`)."""

from __future__ import annotations

import sys

from models.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())

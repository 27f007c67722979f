"""What every stage script shares: logging, and failing with a message instead of a traceback."""
from __future__ import annotations

import logging
import os
import sys
from typing import Callable


class UserError(Exception):
    """A problem the user can fix (a params value, a missing folder): reported without a traceback."""


def worker_count(n: int) -> int:
    """Resolve a `workers` param: 0 means one per CPU core."""
    return n or os.cpu_count() or 1


def run(main: Callable[[], None]) -> None:
    """Run a stage's main(); a UserError ends it with `error: ...` and exit status 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)

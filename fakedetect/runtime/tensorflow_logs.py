"""TensorFlow's start-up log kept off stderr, so that what a stage or `fakedetect predict` says is
not buried under it.

TF_CPP_MIN_LOG_LEVEL (0 shows all; 1 hides INFO, 2 also WARNING, 3 also ERROR) filters
TensorFlow's C++ log, but not all of it: some notices are written while its libraries load,
before that filter is in force (oneDNN's "custom operations are on", once per library, each after
absl's "All log messages before absl::InitializeLog() ..." line). So TensorFlow is first imported
with the file descriptor of stderr held back, and only what the level lets through is passed on.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LEVEL = "2"  # the Makefile's: INFO and WARNING hidden, errors shown
SEVERITIES = "IWEF"  # a record's first letter; hidden when its index is below the level
RECORD = re.compile(r"([IWEF])\d{4} [\d:.]+ +\d+ \S+:\d+\] ")  # absl: severity, date, time, thread, file:line
ABSL_PRE_INIT = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def level() -> int:
    """The level in force: the user's TF_CPP_MIN_LOG_LEVEL, else the default (set in the
    environment, where TensorFlow reads it)."""
    value = os.environ.setdefault(LEVEL_VARIABLE, DEFAULT_LEVEL)
    return int(value) if value.isdigit() else 0


def shown(text: str, min_level: int) -> str:
    """The lines of `text` that TensorFlow's own filter would let through at `min_level`: log
    records (with their continuation lines) below it go, and so does absl's pre-init notice,
    which only announces them. Anything else (an error record, a line before any record) stays."""
    kept, hiding = [], False
    for line in text.splitlines(keepends=True):
        record = RECORD.match(line)
        if record:
            hiding = SEVERITIES.index(record.group(1)) < min_level
        elif line.rstrip("\n") == ABSL_PRE_INIT:
            hiding = min_level > 0
        if not hiding:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def filtered() -> Iterator[None]:
    """Run the block (TensorFlow's first import) with the level set and stderr's file descriptor,
    where TensorFlow's C++ code writes, held back; then pass on what the level lets through.
    Python's own writes to sys.stderr in the block (a warning) are not held: they go straight out."""
    min_level = level()
    python_stderr = sys.stderr
    python_stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held, \
            open(saved, "w", buffering=1, encoding="utf-8", errors="backslashreplace") as direct:
        os.dup2(held.fileno(), 2)
        sys.stderr = direct
        try:
            yield
        finally:
            sys.stderr = python_stderr
            direct.flush()
            os.dup2(saved, 2)
            held.seek(0)
            python_stderr.write(shown(held.read().decode(errors="replace"), min_level))
            python_stderr.flush()

"""TensorFlow's start-up log is filtered as TF_CPP_MIN_LOG_LEVEL would filter it, and nothing else is lost."""
import pytest
import os
import subprocess
import sys

from fakedetect.runtime.tensorflow_logs import shown
from helpers import PROJECT

START_UP = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796088417.677121   31612 port.cc:153] oneDNN custom operations are on.\n"
    "I0000 00:00:1796088417.869929   31612 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.\n"
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.\n"
)
WARNING = "W0000 00:00:1796088418.000001   31612 env.cc:10] a warning\n"
ERROR = "E0000 00:00:1796088419.000001   31612 node_def_util.cc:682] an error\n  its second line\n"
BEFORE_ANY_RECORD = "something else\n"


@pytest.mark.fast
def test_records_below_the_level_go_with_their_continuation_lines():
    text = BEFORE_ANY_RECORD + START_UP + WARNING + ERROR
    assert shown(text, 0) == text
    assert shown(text, 1) == BEFORE_ANY_RECORD + WARNING + ERROR
    assert shown(text, 2) == BEFORE_ANY_RECORD + ERROR
    assert shown(text, 3) == BEFORE_ANY_RECORD


def filtered_block(level: str | None) -> str:
    """The stderr of a process that writes the start-up log and an error record to file descriptor 2
    (as TensorFlow's C++ code does) and a line through sys.stderr inside the block, with
    TF_CPP_MIN_LOG_LEVEL set to `level` (None: unset)."""
    code = ("import os, sys\nfrom fakedetect.runtime import tensorflow_logs\n"
            "print('before', file=sys.stderr)\n"
            "with tensorflow_logs.filtered():\n"
            f"    os.write(2, {(START_UP + ERROR).encode()!r})\n"
            "    print('python', file=sys.stderr)\n"
            "print('after', os.environ['TF_CPP_MIN_LOG_LEVEL'], file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | {"PYTHONPATH": str(PROJECT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=env if level is None else env | {"TF_CPP_MIN_LOG_LEVEL": level})
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_the_block_holds_back_the_file_descriptor_only():
    assert filtered_block(None) == "before\npython\n" + ERROR + "after 2\n"  # the Makefile's level by default
    assert filtered_block("0") == "before\npython\n" + START_UP + ERROR + "after 0\n"  # the user's level is kept

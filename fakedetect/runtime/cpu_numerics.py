"""The same numbers on any x86-64 CPU, as far as the numeric libraries allow: imported first
by the stages whose results a last-bit difference changes (training, t-SNE, the Keras head's
training and evaluation).

numpy, OpenBLAS, MKL, oneDNN and torch's own kernels choose their code at run time from the
CPU's instruction sets (AVX2 on an AMD EPYC; AVX-512 or AMX on a recent Intel Xeon), and each
choice rounds floats its own way; a training loop or a t-SNE then turns a last-bit difference
into other weights or other coordinates. Importing this module caps every one of them at the
AVX2 level (x86-64-v3, which both have) through the library's own switch. The libraries read
their switch once, when they load or first compute, so the import must come before numpy and
torch are loaded. A switch already set in the environment is kept: that is how another level
is forced to measure what the cap is worth (docs/determinism.md "Determinism across machines"), or how a
user trades identical numbers for the speed of wider instructions.

Thread counts are the other source: torch sums gradients over its threads, so the training
stage fixes their number (`attribution.threads`); t-SNE runs on one thread.
"""
from __future__ import annotations

import os
import platform
import sys
import warnings
from pathlib import Path

# Each library's switch and its AVX2 value.
AVX2_LEVEL = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN: torch's (and TensorFlow's) convolutions
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorised kernels (batch norm, Adam, reductions)
    "MKL_CBWR": "AVX2",  # MKL, torch's BLAS: Intel's conditional numerical reproducibility
    "OPENBLAS_CORETYPE": "Haswell",  # the OpenBLAS of numpy and scipy (its AVX2 kernels and blocking)
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # numpy's AVX-512 loops
}
# TensorFlow swaps in oneDNN's own ops by default only on CPUs with AVX-512 VNNI, BF16 or AMX, so
# the same Keras training runs other kernels there. Off, every CPU runs TensorFlow's Eigen
# kernels, whose matrix products call oneDNN's sgemm, capped by ONEDNN_MAX_CPU_ISA above
# (docs/determinism.md "The FCNN on any CPU").
TENSORFLOW_KERNELS = {"TF_ENABLE_ONEDNN_OPTS": "0"}


def has_avx2() -> bool:
    """Whether this is an x86-64 CPU with AVX2 (read from Linux's /proc/cpuinfo): only there is
    the cap safe (OpenBLAS's Haswell kernels would not run on an older CPU) and meaningful."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return False
    return "avx2" in flags.split()


def pin_instruction_sets() -> dict[str, str]:
    """Set every library's switch to the AVX2 level unless the environment sets it; return the
    switches in force. Warns when numpy or torch is already loaded (too late for some switches)."""
    if not has_avx2():
        return {}
    loaded = sorted({"numpy", "torch"} & set(sys.modules))
    if loaded:
        warnings.warn(f"fakedetect.runtime.cpu_numerics imported after {loaded}: their instruction sets may not be pinned",
                      stacklevel=2)
    switches = AVX2_LEVEL | TENSORFLOW_KERNELS
    for name, value in switches.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in switches}


pin_instruction_sets()

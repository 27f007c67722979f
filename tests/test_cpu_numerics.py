"""The instruction-set cap that the training and t-SNE stages import first. Checked in a
subprocess: importing the module here, after numpy and torch, would be too late, and would
change this process's environment."""
import subprocess
import sys

import pytest

from helpers import PROJECT, stage_env

SWITCHES = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")


def test_the_cap_reaches_torch_and_keeps_what_the_environment_sets():
    """Imported before torch, the module sets every switch that the environment does not set;
    one that it sets (here torch's own kernels at their baseline) is kept, and torch obeys it."""
    script = ("from fakedetect.runtime import cpu_numerics; import os, torch; "
              "print(cpu_numerics.has_avx2(), *(os.environ.get(k) for k in cpu_numerics.AVX2_LEVEL), "
              "torch.backends.cpu.get_cpu_capability(), sep='\\n')")
    env = {k: v for k, v in stage_env().items() if k not in SWITCHES} | {"ATEN_CPU_CAPABILITY": "default"}
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    has_avx2, *switches, capability = result.stdout.splitlines()
    if has_avx2 != "True":
        pytest.skip("the cap applies to x86-64 CPUs with AVX2 only")
    assert switches == ["AVX2", "default", "AVX2", "Haswell", "X86_V4 AVX512_ICL AVX512_SPR"]
    assert capability == "DEFAULT"


FCNN = """
import hashlib, os, sys
from fakedetect.runtime import cpu_numerics
import numpy as np
from fakedetect.detectors import keras_heads
from fakedetect.params import LinearParams
rng = np.random.default_rng(0)
x, y = rng.normal(size=(400, 144)).astype(np.float32), rng.integers(0, 2, 400)
model, _ = keras_heads.train(x[:300], y[:300], x[300:], y[300:], LinearParams(fcnn={"units": 64, "epochs": 2}))
print(os.environ["TF_ENABLE_ONEDNN_OPTS"], os.environ["ONEDNN_MAX_CPU_ISA"])
print(hashlib.md5(b"".join(w.tobytes() for w in model.get_weights())).hexdigest())
"""


def test_the_fcnn_trains_on_the_pinned_kernels_whatever_the_thread_count():
    """Imported first, the module turns TensorFlow's oneDNN ops off and caps oneDNN at AVX2 before
    TensorFlow loads: the weights equal those of a process given both switches by its environment
    and held to one thread (on an AVX-512 CPU, TensorFlow's own choice gives other weights:
    docs/determinism.md "The FCNN on any CPU")."""
    def weights(**extra):
        env = {k: v for k, v in stage_env().items() if k not in SWITCHES} | extra
        result = subprocess.run([sys.executable, "-c", FCNN], cwd=PROJECT, env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()[-2:]

    pinned = weights()
    if pinned[0] != "0 AVX2":
        pytest.skip("the cap applies to x86-64 CPUs with AVX2 only")
    assert weights(TF_ENABLE_ONEDNN_OPTS="0", ONEDNN_MAX_CPU_ISA="AVX2", TF_NUM_INTRAOP_THREADS="1",
                   TF_NUM_INTEROP_THREADS="1") == pinned

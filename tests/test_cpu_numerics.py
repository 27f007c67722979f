"""The instruction-set cap that the training and t-SNE stages import first. Checked in a
subprocess: importing the module here, after numpy and torch, would be too late, and would
change this process's environment."""
import subprocess
import sys

import pytest

from helpers import PROJECT, stage_env

SWITCHES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")


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

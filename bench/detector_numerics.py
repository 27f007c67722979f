"""Which saved detector follows the CPU's instruction sets (docs/determinism.md "The compare stage on any CPU").

Runs the compare stage on this project's data/features (the demo's, from `dvc repro extract_clip`)
in fresh processes, each in a scratch folder, once with the environment as `dvc repro` gives it
and once per setting below: each setting forces one library onto other code, as another CPU
would choose it (an Intel Xeon with AVX-512 and AMX runs TensorFlow's oneDNN ops and MKL's
AVX-512 code; this AMD EPYC other blocking). Prints, per setting, how many of models/detectors'
files differ from the first run's and which. `--smoke` runs the first run and one setting.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
SWITCHES = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_CBWR",
            "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")
# name -> the environment it adds to a run without any switch set
SETTINGS = {
    "tensorflow_onednn_ops_off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "onednn_avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "torch_kernels_avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "mkl_avx2": {"MKL_CBWR": "AVX2"},
    "openblas_haswell": {"OPENBLAS_CORETYPE": "Haswell"},
    "one_thread": {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"},
}
# The same settings again with every switch of fakedetect/runtime/cpu_numerics.py set first
# (what importing it does): a setting that still changes a file there is not pinned by it.
PIN = ("\nimport runpy, sys\nsys.argv = [{stage!r}]\nfrom fakedetect.runtime import cpu_numerics\n"
       "runpy.run_path({stage!r}, run_name='__main__')\n")


def run_compare(folder: Path, extra: dict[str, str], pinned: bool) -> dict[str, str]:
    """md5 of each file of models/detectors after the compare stage ran in `folder`."""
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES} | {"PYTHONPATH": str(PROJECT),
                                                                       "TF_CPP_MIN_LOG_LEVEL": "2"} | extra
    stage = str(PROJECT / "stages/compare.py")
    command = [sys.executable, "-c", PIN.format(stage=stage)] if pinned else [sys.executable, stage]
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True, text=True)
    models = folder / "models/detectors"
    return {str(f.relative_to(models)): hashlib.md5(f.read_bytes()).hexdigest()
            for f in sorted(models.rglob("*")) if f.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the first run and one setting")
    parser.add_argument("--pinned", action="store_true", help="every run with cpu_numerics's switches set first")
    args = parser.parse_args()
    if not (PROJECT / "data/features/features.npy").exists():
        sys.exit("bench/detector_numerics.py needs data/features: run `dvc repro extract_clip` first")
    settings = dict(list(SETTINGS.items())[:1]) if args.smoke else SETTINGS
    with tempfile.TemporaryDirectory(prefix="fakedetect-numerics-") as scratch:
        folder = Path(scratch)
        for name in ("data", "params.yaml", "plots_template"):
            (folder / name).symlink_to(PROJECT / name)
        prefix = "pinned_" if args.pinned else ""
        baseline = run_compare(folder, {}, args.pinned)
        print(f"{prefix}detector_files: {len(baseline)}")
        for name, extra in settings.items():
            files = run_compare(folder, extra, args.pinned)
            changed = sorted(f for f in baseline if files.get(f) != baseline[f])
            print(f"{prefix}{name}_files_changed: {len(changed)} {' '.join(changed)}".rstrip(), flush=True)


if __name__ == "__main__":
    main()

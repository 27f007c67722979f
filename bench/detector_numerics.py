"""Which saved detector follows the CPU (docs/determinism.md "The compare stage on any CPU").

Runs the compare stage on this project's data/features (the demo's, from `dvc repro extract_clip`)
in fresh processes, each in a scratch folder: once as `dvc repro` runs it (its first import,
fakedetect/runtime/cpu_numerics.py, pins every numeric library at the AVX2 level and turns
TensorFlow's oneDNN ops off), then once per setting below. Each setting gives one library back
the choice it makes without the pin on a CPU with AVX-512 (an AMD EPYC Zen 4, an Intel Xeon),
or changes the thread count. Prints, per setting, how many of models/detectors' files differ from
the first run's and which. `--smoke` runs the first run and one setting, on two detectors.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from fakedetect.runtime import cpu_numerics  # its switches: taken out of the runs' environment

PROJECT = Path(__file__).resolve().parents[1]
PINNED = cpu_numerics.AVX2_LEVEL | cpu_numerics.TENSORFLOW_KERNELS
ONE_THREAD = {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
# name -> the environment a run adds; the stage's pin keeps a switch that is already set
SETTINGS = {
    "tensorflow_onednn_ops_on": {"TF_ENABLE_ONEDNN_OPTS": "1"},  # TensorFlow's choice on AVX-512 VNNI, BF16 or AMX
    "onednn_any_isa": {"ONEDNN_MAX_CPU_ISA": "ALL"},
    "torch_kernels_avx512": {"ATEN_CPU_CAPABILITY": "avx512"},
    "mkl_auto": {"MKL_CBWR": "AUTO"},
    "openblas_skylakex": {"OPENBLAS_CORETYPE": "SkylakeX"},
    "numpy_every_loop": {"NPY_DISABLE_CPU_FEATURES": ""},
    "one_thread": ONE_THREAD,
}


def run_compare(folder: Path, extra: dict[str, str]) -> dict[str, str]:
    """md5 of each file of models/detectors after the compare stage ran in `folder`."""
    env = {k: v for k, v in os.environ.items() if k not in PINNED} | {"PYTHONPATH": str(PROJECT),
                                                                     "TF_CPP_MIN_LOG_LEVEL": "2"} | extra
    subprocess.run([sys.executable, str(PROJECT / "stages/compare.py")], cwd=folder, env=env, check=True,
                   capture_output=True, text=True)
    models = folder / "models/detectors"
    return {str(f.relative_to(models)): hashlib.md5(f.read_bytes()).hexdigest()
            for f in sorted(models.rglob("*")) if f.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the first run and one setting, on two detectors")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS), help="these settings only")
    args = parser.parse_args()
    if not (PROJECT / "data/features/features.npy").exists():
        sys.exit("bench/detector_numerics.py needs data/features: run `dvc repro extract_clip` first")
    settings = args.settings[:1] if args.smoke else args.settings
    with tempfile.TemporaryDirectory(prefix="fakedetect-numerics-") as scratch:
        folder = Path(scratch)
        for name in ("data", "plots_template"):
            (folder / name).symlink_to(PROJECT / name)
        params = yaml.safe_load((PROJECT / "params.yaml").read_text())
        if args.smoke:  # two detectors (faiss, torch): the smoke run checks that the bench runs
            params["detectors"] = {name: params["detectors"][name] for name in ("knn", "blocks")}
        (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        baseline = run_compare(folder, {})
        print(f"detector_files: {len(baseline)}")
        for name in settings:
            files = run_compare(folder, SETTINGS[name])
            changed = sorted(f for f in baseline if files.get(f) != baseline[f])
            print(f"{name}_files_changed: {len(changed)} {' '.join(changed)}".rstrip(), flush=True)


if __name__ == "__main__":
    main()

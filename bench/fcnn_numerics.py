"""What pinning TensorFlow's kernels costs the Keras FCNN (docs/determinism.md "The FCNN on any CPU").

Trains the head of params.yaml `linear` on data/features (the demo's, from `dvc repro
extract_clip`) in fresh processes, three times each: with TensorFlow's own choice of kernels
on this CPU, and with fakedetect/runtime/cpu_numerics.py imported first (oneDNN's ops off,
oneDNN's sgemm capped at AVX2), as linear_train does. Prints the median training time of each,
their ratio, and the largest weight difference between the two models. `--smoke`: one run each.
"""
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
REPEATS = 1 if "--smoke" in sys.argv else 3
SWITCHES = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_CBWR",
            "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")
TRAIN = """
import sys, time{pin}
import numpy as np
from fakedetect.detectors import keras_heads
from fakedetect.features import feature_files
from fakedetect.params import load_params
matrix, rows = feature_files.load_features("data/features")
train, val = (rows.split == "train").to_numpy(), (rows.split == "val").to_numpy()
labels = rows.label.to_numpy()
start = time.perf_counter()
model, _ = keras_heads.train(matrix[train], labels[train], matrix[val], labels[val], load_params().linear)
seconds = time.perf_counter() - start
np.savez(sys.argv[1], *model.get_weights())
print(seconds)
"""


def train(pinned: bool, weights: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES} | {"PYTHONPATH": str(PROJECT),
                                                                       "TF_CPP_MIN_LOG_LEVEL": "2"}
    script = TRAIN.format(pin="\nfrom fakedetect.runtime import cpu_numerics" if pinned else "")
    out = subprocess.run([sys.executable, "-c", script, str(weights)], cwd=PROJECT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main() -> None:
    if not (PROJECT / "data/features/features.npy").exists():
        sys.exit("bench/fcnn_numerics.py needs data/features: run `dvc repro extract_clip` first")
    with tempfile.TemporaryDirectory() as folder:
        times = {}
        for pinned in (False, True):
            name = "pinned" if pinned else "tensorflow_default"
            times[name] = statistics.median(train(pinned, Path(folder) / f"{name}.npz") for _ in range(REPEATS))
        default, pinned = (np.load(Path(folder) / f"{n}.npz") for n in ("tensorflow_default", "pinned"))
        largest = max(float(np.abs(default[k] - pinned[k]).max()) for k in default.files)
    print(f"fcnn_train_s_tensorflow_default: {times['tensorflow_default']:.2f}")
    print(f"fcnn_train_s_pinned: {times['pinned']:.2f}")
    print(f"fcnn_train_pinned_over_default: {times['pinned'] / times['tensorflow_default']:.2f}")
    print(f"fcnn_largest_weight_difference: {largest:.2e}")


if __name__ == "__main__":
    main()

"""Attribution speed on the demo setting (params.yaml `attribution`, data from `dvc repro preprocess`):
level-1 training images/s with and without the frozen-trunk reuse, the one-off cost of caching
the frozen trunk, and the resnet_attribution stage's total time (run in a scratch folder, so
the pipeline's outputs are untouched)."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fakedetect import layouts
from fakedetect.attribution import data, network, training
from fakedetect.artifacts import PREPROCESSED_MANIFEST
from fakedetect.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def training_rate(p, level, bank, reuse: bool) -> tuple[float, float]:
    """(images/s over one training epoch, seconds spent caching the frozen trunk first)."""
    p = p.model_copy(update={"reuse_frozen": reuse, "max_epochs": 1})
    model, frozen = training.new_model(p, len(level.classes), None)
    start = time.perf_counter()
    inputs = training.make_inputs(model, bank, p, {})
    cache_s = time.perf_counter() - start
    return training.train_level(model, level, inputs, p, frozen).images_per_s, cache_s


def stage_seconds() -> float:
    """Wall time of the whole stage, run in a scratch folder that links to this project's data."""
    with tempfile.TemporaryDirectory() as scratch:
        os.symlink(ROOT / "data", Path(scratch) / "data")
        shutil.copy(ROOT / "params.yaml", scratch)
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "stages/resnet_attribution.py")], cwd=scratch, check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    os.chdir(ROOT)
    torch.use_deterministic_algorithms(True)
    p = load_params().attribution
    if not network.frozen_prefix(p.freeze):
        sys.exit("bench/attribution.py: params.yaml attribution.freeze has no frozen leading stage to reuse")
    level1 = data.prepare(layouts.read_manifest(PREPROCESSED_MANIFEST), p)["level1"]
    bank = training.ImageBank([*level1.train.image, *level1.val.image])
    with_reuse, cache_s = training_rate(p, level1, bank, reuse=True)
    without, _ = training_rate(p, level1, bank, reuse=False)
    print(f"setting: {p.arch} weights={p.weights} frozen={'+'.join(p.freeze)} crop={p.crop_size} "
          f"batch={p.batch_size}, {torch.get_num_threads()} threads")
    print(f"train_images_per_s_with_reuse: {with_reuse:.1f}")
    print(f"train_images_per_s_without_reuse: {without:.1f}")
    print(f"reuse_speedup: {with_reuse / without:.2f}")
    print(f"frozen_trunk_cache_s: {cache_s:.1f} ({len(bank.paths)} images, {len(bank.paths) / cache_s:.0f} images/s)")
    print(f"stage_total_s: {stage_seconds():.1f}")


if __name__ == "__main__":
    main()

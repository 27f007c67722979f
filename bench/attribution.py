"""Attribution speed and memory.

Speed, on the demo setting (params.yaml `attribution`, data from `dvc repro preprocess`):
level-1 training images/s with and without the frozen-trunk reuse, the one-off cost of caching
the frozen trunk, and the resnet_attribution stage's total time (run in a scratch folder, so
the pipeline's outputs are untouched).

Memory: peak resident memory of one level's whole path (load the images, cache the frozen
trunk, train an epoch, validate, score the test images) against the number of synthetic 224-px
images (default 500, 2000, 8000; `python bench/attribution.py memory N ...` for other counts),
each count in a fresh process, and the bytes each image costs on disk in the scratch files,
for this setting and for the univfd profile's (resnet50, stem and layer1 frozen).
`python bench/attribution.py memory --univfd N ...` runs the same path with the univfd profile's
model setting instead (resnet50, stem and layer1 frozen, whole 224-px images, batch 32, one epoch):
slow on a CPU, so give it a few hundred images; the growth with the count comes from the default.
`--smoke`: one training epoch each way, the stage for one epoch, one count of 12 images in the system's temporary
folder (seconds; the figures mean nothing).
"""
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from PIL import Image

from fakedetect.data import manifests
from fakedetect.attribution import cache, data, network, training
from fakedetect.attribution.levels import LEVELS
from fakedetect.artifacts import PREPROCESSED_MANIFEST
from fakedetect.params import AttributionParams, load_params

ROOT = Path(__file__).resolve().parents[1]
SMOKE = "--smoke" in sys.argv
MEMORY_COUNTS = (12,) if SMOKE else (500, 2000, 8000)
TEST_IMAGES = 4 if SMOKE else 32  # scored by streaming; the rest train (3/4) and validate (1/4)
SCRATCH = None if SMOKE else ROOT / ".cache"  # the synthetic images (gigabytes at 8000); a smoke run's, in /tmp
# Cheap on 2 cores (one frozen stage, 32-px crops, one epoch); what is measured is memory, not accuracy.
MEMORY_SETTING = {"arch": "resnet18", "weights": "none", "freeze": ["stem"], "crop_size": 32, "max_epochs": 1,
                  "batch_size": 32}
# The univfd profile's model and inputs (random weights: the same shapes and bytes as ImageNet's).
UNIVFD_SETTING = {"arch": "resnet50", "weights": "none", "freeze": ["stem", "layer1"], "crop_size": None,
                  "max_epochs": 1, "batch_size": 32}


def training_rate(p, level, bank, reuse: bool) -> tuple[float, float]:
    """(images/s over one training epoch, seconds spent caching the frozen trunk first)."""
    p = p.model_copy(update={"reuse_frozen": reuse, "max_epochs": 1})
    model, frozen = training.new_model(p, len(level.classes), None)
    start = time.perf_counter()
    inputs = cache.make_inputs(model, bank, p, {})
    cache_s = time.perf_counter() - start
    return training.train_level(model, level, inputs, p, frozen).images_per_s, cache_s


def stage_seconds() -> float:
    """Wall time of the whole stage, run in a scratch folder that links to this project's data
    (`--smoke`: for one epoch)."""
    with tempfile.TemporaryDirectory() as scratch:
        os.symlink(ROOT / "data", Path(scratch) / "data")
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        if SMOKE:
            params["attribution"]["max_epochs"] = 1
        (Path(scratch) / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "stages/resnet_attribution.py")], cwd=scratch, check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _synthetic_level(folder: Path, n: int) -> data.LevelData:
    """n 224-px PNGs (smooth noise, half of them with a checkerboard) as a level-1 data set."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        base = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        label = i % 2
        pixels = np.clip(base.astype(np.int16) + 12 * label * (np.indices((224, 224)).sum(0) % 2)[:, :, None], 0, 255)
        path = folder / f"{i}.png"
        Image.fromarray(pixels.astype(np.uint8)).save(path, compress_level=1)
        part = "test" if i < TEST_IMAGES else ("val" if i % 4 == 0 else "train")
        rows.append({"image": str(path), "label": label, "target": label, "split": part,
                     "test_set": "synthetic" if part == "test" else "", "generator": "g" if label else "real"})
    frame = pd.DataFrame(rows)
    level = LEVELS["level1"]
    return data.LevelData(level, ("real", "fake"), *(frame[frame.split == s] for s in ("train", "val", "test")))


def memory_child(n: int, setting: dict) -> None:
    """One count, in this process: print the resident memory before the data and at the peak."""
    torch.use_deterministic_algorithms(True)
    p = AttributionParams.model_validate(setting)
    with tempfile.TemporaryDirectory(dir=SCRATCH) as scratch:
        level = _synthetic_level(Path(scratch), n)
        model, frozen = training.new_model(p, 2, None)
        before = _peak_rss_mib()
        bank = cache.ImageBank([*level.train.image, *level.val.image])
        inputs = cache.make_inputs(model, bank, p, {})
        trained = training.train_level(model, level, inputs, p, frozen)
        training.predict(trained.model, inputs, bank.index(level.val.image), p.batch_size)
        training.predict_images(trained.model, list(level.test.image), bank.shape, p.batch_size)
        print(before, _peak_rss_mib(), inputs.activations.record_bytes, bank.pixels.record_bytes)


def scratch_bytes_per_image(arch: str, freeze: list[str], side: int = 224) -> int:
    """Disk bytes per training image: its pixels and its frozen-trunk activations in float16."""
    model = network.build_resnet(arch, 1)
    with torch.no_grad():
        x = network.forward_stages(model, torch.zeros(1, 3, side, side), 0, network.frozen_prefix(freeze))
    return 3 * side * side + x.numel() * np.dtype(cache.CACHE_DTYPE).itemsize


def memory(counts, univfd: bool = False) -> None:
    if SCRATCH:
        SCRATCH.mkdir(exist_ok=True)
    setting = UNIVFD_SETTING if univfd else MEMORY_SETTING
    print(f"memory setting: {setting}, {TEST_IMAGES} test images streamed, 224-px images")
    peaks = {}
    for n in counts:
        out = subprocess.run([sys.executable, __file__, "memory-child", str(n)] + ["--univfd"] * univfd + ["--smoke"] * SMOKE,
                             cwd=ROOT,
                             check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
        before, peak, act_bytes, px_bytes = (float(v) for v in out.split()[-4:])
        peaks[n] = peak
        print(f"peak_rss_mib_{n}_images: {peak:.0f}")
        print(f"data_rss_mib_{n}_images: {peak - before:.0f} (above the process with its model, {before:.0f} MiB)")
    first, last = min(peaks), max(peaks)
    if first != last:
        print(f"peak_rss_growth_per_image_kib: {(peaks[last] - peaks[first]) * 1024 / (last - first):.1f} "
              f"({first} -> {last} images)")
    print(f"scratch_disk_bytes_per_image: {int(act_bytes + px_bytes)} (pixels {int(px_bytes)}, "
          f"float16 activations {int(act_bytes)})")
    univfd_bytes = scratch_bytes_per_image("resnet50", ["stem", "layer1"])
    print(f"scratch_disk_bytes_per_image_univfd: {univfd_bytes} (resnet50 stem+layer1; float32 in memory was "
          f"{(univfd_bytes - 3 * 224 * 224) * 2 + 3 * 224 * 224})")


def main() -> None:
    univfd = "--univfd" in sys.argv
    args = [a for a in sys.argv[1:] if a not in ("--univfd", "--smoke")]
    if args[:1] == ["memory-child"]:
        return memory_child(int(args[1]), UNIVFD_SETTING if univfd else MEMORY_SETTING)
    if args[:1] == ["memory"]:
        return memory([int(n) for n in args[1:]] or MEMORY_COUNTS, univfd)
    os.chdir(ROOT)
    torch.use_deterministic_algorithms(True)
    p = load_params().attribution
    if not network.frozen_prefix(p.freeze):
        sys.exit("bench/attribution.py: params.yaml attribution.freeze has no frozen leading stage to reuse")
    level1 = data.prepare(manifests.read_manifest(PREPROCESSED_MANIFEST), p)["level1"]
    bank = cache.ImageBank([*level1.train.image, *level1.val.image])
    with_reuse, cache_s = training_rate(p, level1, bank, reuse=True)
    without, _ = training_rate(p, level1, bank, reuse=False)
    print(f"setting: {p.arch} weights={p.weights} frozen={'+'.join(p.freeze)} crop={p.crop_size} "
          f"batch={p.batch_size}, {torch.get_num_threads()} threads")
    print(f"train_images_per_s_with_reuse: {with_reuse:.1f}")
    print(f"train_images_per_s_without_reuse: {without:.1f}")
    print(f"reuse_speedup: {with_reuse / without:.2f}")
    print(f"frozen_trunk_cache_s: {cache_s:.1f} ({len(bank.paths)} images, {len(bank.paths) / cache_s:.0f} images/s)")
    print(f"stage_total_s: {stage_seconds():.1f}")
    memory(MEMORY_COUNTS)


if __name__ == "__main__":
    main()

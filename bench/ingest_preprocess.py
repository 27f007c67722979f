"""Throughput of ingest (hashing and full decoding included) and preprocess on 2,000 generated
images, with one worker process and with one per core. Prints `name: value` lines. `--smoke`: 8 images."""
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import run_stage, small_demo_params  # noqa: E402

from fakedetect.data import demo  # noqa: E402

N_IMAGES = 8 if "--smoke" in sys.argv else 2000


def make_dataset(root: Path) -> None:
    """Half the images as training PNGs of 256 px (wang2020 layout), half as test JPEGs of 320-640 px."""
    photos = [demo.images.load(str(demo.photo_path(p))).rgb for p in demo.PHOTOS]
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(256, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = photo[y:y + side, x:x + side]
        label = ("0_real", "1_fake")[i % 2]
        if i < N_IMAGES // 2:
            path = root / "train/progan/cat" / label / f"{i:05d}.png"
            image, args = cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA), []
        else:
            path = root / "test/biggan" / label / f"{i:05d}.jpg"
            size = int(rng.integers(320, 641))
            image, args = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA), [cv2.IMWRITE_JPEG_QUALITY, 95]
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), args)


def timed(stage: str, folder: Path) -> float:
    start = time.perf_counter()
    result = run_stage(stage, folder)
    assert result.returncode == 0, result.stderr
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_dataset(folder / "in")
        params = small_demo_params(max_per_class=None, datasets=[
            {"layout": "wang2020", "root": "in", "split": "train"},
            {"layout": "cnndetection_test", "root": "in/test"}])
        params["images"] = ["datasets"]  # the image stages read ingest.datasets, not the demo
        print(f"images: {N_IMAGES}")
        print(f"cores: {os.cpu_count()}")
        results = {}
        for workers in (1, 0):
            params["ingest"]["workers"] = params["preprocess"]["workers"] = workers
            (folder / "params.yaml").write_text(yaml.safe_dump(params))
            n = workers or os.cpu_count()
            results[n] = (N_IMAGES / timed("ingest", folder), N_IMAGES / timed("preprocess", folder))
            print(f"ingest_files_per_s_{n}_workers: {results[n][0]:.1f}")
            print(f"preprocess_images_per_s_{n}_workers: {results[n][1]:.1f}")
        n = os.cpu_count()
        print(f"ingest_speedup_{n}_vs_1_workers: {results[n][0] / results[1][0]:.2f}")
        print(f"preprocess_speedup_{n}_vs_1_workers: {results[n][1] / results[1][1]:.2f}")


if __name__ == "__main__":
    main()

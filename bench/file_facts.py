"""Throughput of the file-facts scan (what ingest reads of each header and `fakedetect datasets` runs):
every file read and hashed, its header parsed, no pixel decoded. 4,000 generated images (JPEGs of
256-640 px at several qualities, PNGs of 256 px), 2 worker processes; the files were just written, so
they are read from the page cache. Prints `name: value` lines; `--smoke`: 200 images.

Decoding is counted, not assumed: Pillow's `ImageFile.load` (which every decode goes through) is
wrapped, before the worker processes fork, to count its calls in shared memory.
"""
import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from fakedetect.data import file_facts

TARGET = 1000  # images per second on 2 cores
WORKERS = 2


def make_images(root: Path, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        side = 256 if i % 2 else int(rng.integers(256, 641))
        coarse = rng.integers(0, 256, (side // 16 + 1, side // 16 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((side + 16, side + 16), Image.BICUBIC).crop((0, 0, side, side))
        path = root / f"{i:05d}.{'png' if i % 2 else 'jpg'}"
        image.save(path, **({} if i % 2 else {"quality": int(rng.integers(70, 101))}))
        paths.append(str(path))
    return paths


def count_decodes() -> "multiprocessing.Value":
    """Wrap ImageFile.load so that every decode, in this process or a forked worker, is counted."""
    counter = multiprocessing.get_context("fork").Value("i", 0)
    load = ImageFile.ImageFile.load

    def counted(self, *args, **kwargs):
        with counter.get_lock():
            counter.value += 1
        return load(self, *args, **kwargs)

    ImageFile.ImageFile.load = counted
    return counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="200 images")
    n = 200 if parser.parse_args().smoke else 4000
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(Path(tmp), n)
        decodes = count_decodes()
        start = time.perf_counter()
        facts = file_facts.scan(paths, WORKERS)
        seconds = time.perf_counter() - start
    assert (facts.reason == "").all() and facts.jpeg_quality.notna().sum() == n // 2
    print(f"images: {n}")
    print(f"workers: {WORKERS} (cores: {os.cpu_count()})")
    print(f"file_facts_seconds: {seconds:.2f}")
    print(f"file_facts_images_per_s: {n / seconds:.0f}")
    print(f"ratio_to_target_{TARGET}_per_s: {n / seconds / TARGET:.2f}")
    print(f"decoded: {decodes.value}")
    if decodes.value:
        sys.exit("the scan decoded pixels")


if __name__ == "__main__":
    main()

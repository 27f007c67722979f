"""Helpers the tests share: running a stage as DVC does, and small image files."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

PROJECT = Path(__file__).resolve().parents[1]


def run_stage(name: str, cwd: Path, params: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python stages/<name>.py` in `cwd` (after writing `params` there as params.yaml)."""
    if params is not None:
        (cwd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return subprocess.run([sys.executable, str(PROJECT / "stages" / f"{name}.py")], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def write_image(path: Path, size=(48, 40), mode="RGB", seed=0, **save_args) -> Path:
    """A small random image of the given mode, saved by Pillow according to the extension."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save_args)
    return path


def small_demo_params(**ingest) -> dict:
    """The default params with a demo small enough for tests."""
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["ingest"]["demo"].update(train_per_class=12, val_per_class=4, test_per_class=6)
    params["ingest"].update(ingest)
    return params

"""A 4-experiment grid's extraction work, with the shared feature store and with a store per
workspace (the former default `.cache/features`, relative to the workspace, which every queued or
`--temp` experiment, running in its own temporary copy, starts empty).

The grid is docs/experiments.md "Comparing detectors": linear.head in {fcnn, linear_probe} x extract.batch_size
in {16, 32}; every point re-runs `extract_clip` (the heads do not change what it does). Like
`dvc exp run --run-all -j 2`, four workspaces (copies of params.yaml and the preprocessed manifest,
the images linked) run the stage two at a time, on N_IMAGES demo images with the demo backbone.
Prints the images encoded in all (from each run's metrics/extract.json) and the wall time of the
grid's extraction in each setting, and their ratios. Needs `dvc repro preprocess`. `--smoke`: 4 images,
the grid's first point only (seconds; the figures mean nothing).
"""
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from fakedetect.data import manifests
from fakedetect.artifacts import PREPROCESSED, PREPROCESSED_MANIFEST
from fakedetect.features.feature_store import STORE_ENV

PROJECT = Path(__file__).resolve().parents[1]
SMOKE = "--smoke" in sys.argv
N_IMAGES = 4 if SMOKE else 256
GRID = [("fcnn", 16), ("fcnn", 32), ("linear_probe", 16), ("linear_probe", 32)]  # the queue's order
if SMOKE:
    GRID = GRID[:1]
WORKERS = 2


def workspace(root: Path, rows, head: str, batch_size: int, store: str | None) -> Path:
    """A workspace as a queued experiment gets it: the params with the grid point, the manifest."""
    folder = Path(tempfile.mkdtemp(dir=root))
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["linear"]["head"] = head
    params["extract"].update(batch_size=batch_size, store=store)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (folder / "data").mkdir()
    rows.to_csv(folder / PREPROCESSED_MANIFEST, index=False)
    (folder / PREPROCESSED).symlink_to(PROJECT / PREPROCESSED)
    return folder


def extract_clip(folder: Path, env: dict) -> int:
    """Run the stage in `folder`; return how many images it encoded."""
    result = subprocess.run([sys.executable, str(PROJECT / "stages" / "extract_clip.py")], cwd=folder, env=env,
                            capture_output=True, text=True)
    if result.returncode:
        sys.exit(result.stderr[-3000:])
    return int(re.search(r"\d+ images: (\d+) computed", result.stderr).group(1))  # the stage's log line


def grid(rows, store: str | None, env: dict) -> tuple[int, float]:
    """Images encoded and wall seconds of the grid's extract runs, WORKERS at a time."""
    with tempfile.TemporaryDirectory() as root:
        folders = [workspace(Path(root), rows, head, batch_size, store) for head, batch_size in GRID]
        start = time.perf_counter()
        with ThreadPoolExecutor(WORKERS) as pool:
            encoded = sum(pool.map(lambda folder: extract_clip(folder, env), folders))
        return encoded, time.perf_counter() - start


def main() -> None:
    load_at_start = os.getloadavg()[0]
    try:
        rows = manifests.read_manifest(PROJECT / PREPROCESSED_MANIFEST)
    except FileNotFoundError:
        sys.exit(f"{PREPROCESSED_MANIFEST} not found: run `dvc repro preprocess` first")
    rows = rows[rows.status == "ok"].drop_duplicates("image_sha256").head(N_IMAGES)
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    per_workspace, per_workspace_s = grid(rows, ".cache/features", env)
    with tempfile.TemporaryDirectory() as shared_store:
        shared, shared_s = grid(rows, None, {**env, STORE_ENV: shared_store})
    print(f"grid_experiments: {len(GRID)}")
    print(f"grid_images: {len(rows)}")
    print(f"per_workspace_store_images_encoded: {per_workspace}")
    print(f"shared_store_images_encoded: {shared}")
    print(f"images_encoded_ratio_shared_to_per_workspace: {shared / per_workspace:.3f}")
    print(f"per_workspace_store_wall_s: {per_workspace_s:.1f}")
    print(f"shared_store_wall_s: {shared_s:.1f}")
    print(f"wall_ratio_shared_to_per_workspace: {shared_s / per_workspace_s:.3f}")
    print(f"load_average_start_end: {load_at_start:.1f} {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

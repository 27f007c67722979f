"""Benchmark of the protocols stage on the demo's stored features: every fold of both protocols with every
configured detector (protocols.run in this process, seconds per fold and in all, the noisy views it
encoded), then the stage as `dvc repro -f protocols` runs it (a fresh process on a warm store): its
wall time and the images it encoded, which must be 0. Target: all folds in at most 180 s on 2 cores.

Usage: python bench/protocols.py [PROJECT] [--smoke]  (a project whose data/features hold the demo's
features, default: this one; --smoke: a tiny synthetic feature set and one k-NN, no project needed)
"""
from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import torch  # noqa: E402,F401  (before Keras)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from fakedetect.evaluation import protocols  # noqa: E402
from fakedetect.features import feature_files  # noqa: E402
from fakedetect.features.noisy_views import NoisyViews  # noqa: E402
from fakedetect.params import load_params  # noqa: E402

TARGET_S = 180


def smoke_project(folder: Path) -> None:
    """Tiny stored features of three dated families over shared photographs, and a k-NN."""
    rng = np.random.default_rng(0)
    rows = pd.DataFrame([dict(split="test", test_set=f, label=label, generator=f if label else "real", category=f"p{i % 6}")
                         for f in ("upsample_nearest", "transposed_conv", "noise_denoise") for label in (0, 1)
                         for i in range(24)])
    rows.insert(0, "id", range(len(rows)))
    x = rng.normal(size=(len(rows), 8)).astype(np.float32) + 2 + 3 * rows.label.to_numpy()[:, None]
    feature_files.save_features(folder / "data" / "features", x, rows)
    settings = yaml.safe_load((ROOT / "params.yaml").read_text())
    settings["detectors"] = {"knn": {"kind": "knn", "features": "all", "params": {}}}
    (folder / "params.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))


def in_process(project: Path) -> None:
    os.chdir(project)
    params = load_params()
    matrix, rows = feature_files.load_features("data/features")
    layers = feature_files.load_layers("data/features", matrix.shape[1])
    noisy, seconds = NoisyViews(params, rows), {}
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = last = time.perf_counter()

    def lap(fold) -> None:
        nonlocal last
        seconds[f"{fold.protocol}/{fold.name}"] = time.perf_counter() - last
        last = time.perf_counter()

    try:
        report = protocols.run(matrix, rows, layers, params.detectors, noisy, params.evaluation,
                               demo=params.image_source == "demo", progress=lap)
    finally:
        noisy.close()
    total = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for fold, s in seconds.items():
        print(f"fold_{fold.replace('/', '_')}_s: {s:.1f}")
    print(f"folds: {len(report['folds'])}")
    print(f"detectors: {len(params.detectors)}")
    print(f"all_folds_s: {total:.1f}")
    print(f"all_folds_target_ratio: {total / TARGET_S:.2f}")
    print(f"all_folds_cpu_s: {cpu:.1f}")  # user + system: less sensitive to a busy machine
    print(f"noisy_views_encoded_first_run: {noisy.computed}")


def as_dvc_runs_it(project: Path) -> None:
    """The stage in a fresh process on a copy of the features (the store is warm now): what a second
    `dvc repro -f protocols` does."""
    with tempfile.TemporaryDirectory(prefix="bench-protocols-") as folder:
        shutil.copytree(project / "data" / "features", Path(folder) / "data" / "features")
        shutil.copy2(project / "params.yaml", Path(folder) / "params.yaml")
        if (project / "data" / "preprocessed").exists():  # the noisy views read the images the rows name
            os.symlink(project / "data" / "preprocessed", Path(folder) / "data" / "preprocessed")
        env = os.environ | {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(ROOT / "stages" / "protocols.py")], cwd=folder, env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    encoded = re.search(r"(\d+) noisy views encoded in this run", done.stderr)
    print(f"stage_second_run_s: {wall:.1f}")
    print(f"images_encoded_second_run: {encoded.group(1) if encoded else 'not logged'}")


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--smoke"]
    if "--smoke" in sys.argv[1:]:
        with tempfile.TemporaryDirectory(prefix="bench-protocols-smoke-") as folder:
            smoke_project(Path(folder))
            in_process(Path(folder))
            as_dvc_runs_it(Path(folder))
        return
    project = Path(args[0] if args else ".").resolve()
    in_process(project)
    as_dvc_runs_it(project)


if __name__ == "__main__":
    main()

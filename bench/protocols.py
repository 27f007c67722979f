"""Benchmark of the protocols stage on the demo's stored features: every fold of both protocols with every
configured detector (protocols.run in this process, seconds per fold and in all, the noisy views it
encoded), then the stage as `dvc repro -f protocols` runs it (a fresh process on a warm store): its
wall time and the images it encoded, which must be 0. Target: all folds in at most 180 s on 2 cores.
Last, the width of the whole `dvc metrics show` on metrics files shaped as the univfd profile writes them
(21 test sets, a detector of every kind, both protocols over the 21 generators), with and without the
protocols' three metrics files. Target: at most 1,500 characters.

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

from fakedetect.evaluation import compare, metrics, protocols, robustness  # noqa: E402
from fakedetect.features import feature_files  # noqa: E402
from fakedetect.features.noisy_views import NoisyViews  # noqa: E402
from fakedetect.params import load_params  # noqa: E402

TARGET_S = 180
TARGET_WIDTH = 1500
UNIVFD_SETS = ("progan stylegan stylegan2 biggan cyclegan stargan gaugan crn imle seeingdark san deepfake "
               "whichfaceisreal guided ldm_200 ldm_200_cfg ldm_100 glide_100_27 glide_50_27 glide_100_10 dalle").split()
KINDS = ("knn", "fcnn", "linear_probe", "blocks", "noise_sensitivity", "fusion", "external_head")


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


def univfd_metrics(with_protocols: bool) -> dict[str, dict]:
    """Every metrics file of a univfd run, as the stages' headline functions shape them (values 97.1234)."""
    v = 97.1234
    row = {m: v for m in metrics.METRICS} | {"ece": 0.123456, "brier": 0.123456, "n_real": 1000, "n_fake": 1000}
    evaluation = metrics.headline({"test_sets": {s: dict(row) for s in UNIVFD_SETS}, "mean": row | {"worst_acc": v}})
    detectors = compare.Outcome(reports={k: {"report": {"mean": dict.fromkeys(compare.HEADLINE, v)}} for k in KINDS})
    point = {"acc": v, "ap": v, "tpr_at_fpr5": v}
    methods = ["nn", "linear"] + [k for k in KINDS if k != "noise_sensitivity"]
    folds = [{"protocol": "leave_one_generator_out", "fold": s, "detectors": {k: {s: {"ap": v}} for k in KINDS}}
             for s in UNIVFD_SETS]
    folds += [{"protocol": "chronological", "fold": f"window{i}",
               "detectors": {k: {"immediate_future": {"ap": v}} for k in KINDS}} for i in range(1, 6)]
    found = {
        "metrics/ingest.json": {"files": {"ok": 40000, "read": 40000, "skipped": 0}, "ignored_image_folders": 0,
                                "rows": {"ok": 40000, "skipped": 0, "total": 40000}, "source": "datasets", "test_sets": 21},
        "metrics/extract.json": {"dimension": 768, "images": 40000, "model": "ViT-L-14", "pretrained": "openai",
                                 "rows": 40000, "source": "backbone", "store_id": "c7900bc5f90ec838",
                                 "identity": {"model": "ViT-L-14", "pretrained": "openai", "precision": "float32"}},
        "metrics/nn_eval.json": evaluation, "metrics/linear_eval.json": evaluation,
        "metrics/compare.json": compare.headline(detectors),
        "metrics/robustness.json": robustness.headline({"methods": {m: {"perturbations": {
            "clean": {"mean": point}, "jpeg50": {"mean": point}}} for m in methods}}),
        "metrics/attribution.json": {level: dict.fromkeys(metrics.ATTRIBUTION_HEADLINE, v)
                                     for level in ("level1", "level2", "hierarchy")},
        "dvclive/linear_train/metrics.json": {"train": {"accuracy": 0.97875, "loss": 0.068013, "learning_rate": 0.001},
                                              "eval": {"accuracy": 0.88, "loss": 0.332525}, "epochs": 7,
                                              "best": {"step": 1, "eval": {"accuracy": 0.995, "loss": 0.093098}}},
    }
    if with_protocols:
        headline = protocols.headline({"folds": folds})
        found |= {"metrics/protocols.json": headline["mean"], "metrics/protocols_worst.json": headline["worst"],
                  "metrics/protocols_next.json": headline["next"]}
    return found


def metrics_show_width(found: dict[str, dict]) -> int:
    """The widest line `dvc metrics show` prints for these metrics files (a throwaway git + DVC project)."""
    import json

    with tempfile.TemporaryDirectory(prefix="bench-protocols-width-") as folder:
        for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
            subprocess.run(command, cwd=folder, check=True)
        for name, content in found.items():
            (Path(folder) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(folder) / name).write_text(json.dumps(content))
        (Path(folder) / "dvc.yaml").write_text("metrics:\n" + "".join(f"  - {name}\n" for name in found))
        shown = subprocess.run([sys.executable, "-m", "dvc", "metrics", "show"], cwd=folder, check=True,
                               capture_output=True, text=True).stdout
    return max(len(line) for line in shown.splitlines())


def widths() -> None:
    whole, without = metrics_show_width(univfd_metrics(True)), metrics_show_width(univfd_metrics(False))
    print(f"metrics_show_width_univfd: {whole}")
    print(f"metrics_show_width_univfd_without_protocols: {without}")
    print(f"metrics_show_width_added_by_protocols: {whole - without}")
    print(f"metrics_show_width_target_ratio: {whole / TARGET_WIDTH:.2f}")


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--smoke"]
    if "--smoke" in sys.argv[1:]:
        with tempfile.TemporaryDirectory(prefix="bench-protocols-smoke-") as folder:
            smoke_project(Path(folder))
            in_process(Path(folder))
            as_dvc_runs_it(Path(folder))
        widths()
        return
    project = Path(args[0] if args else ".").resolve()
    in_process(project)
    as_dvc_runs_it(project)
    widths()


if __name__ == "__main__":
    main()

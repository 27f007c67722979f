"""The whole `dvc metrics show` (no arguments: every metrics file in one table, the union of their keys
as columns) stays at most 1,500 characters wide under the univfd profile with every detector and
protocol: the headline files hold few figures, named alike, and per-set figures stay in reports/."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import yaml

from fakedetect.evaluation import aligned, compare, metrics, protocols, robustness, shortcuts
from fakedetect.runtime.training_log import TrainingLog
from helpers import DVC, run

# UnivFD's 19 test sets, and every detector the univfd profile can run (blocks needs per-block features)
SETS = ["progan", "cyclegan", "biggan", "stylegan", "gaugan", "stargan", "deepfake", "seeingdark", "san", "crn",
        "imle", "guided", "ldm_200", "ldm_200_cfg", "ldm_100", "glide_100_27", "glide_50_27", "glide_100_10", "dalle"]
DETECTORS = ["knn", "fcnn", "linear_probe", "blocks", "noise_sensitivity", "fusion", "univfd_head"]
GRID = [f"jpeg{q}" for q in (100, 90, 80, 70, 60, 50, 40, 30)] + [f"blur{s}" for s in (1, 2, 3, 4)]
WIDEST = 1500


def a_report(seed: int) -> dict:
    """A real metrics.report on 19 random two-class test sets and a validation split."""
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame({"split": ["val"] * 40 + ["test"] * 20 * len(SETS),
                         "test_set": [""] * 40 + [s for s in SETS for _ in range(20)],
                         "label": np.arange(40 + 20 * len(SETS)) % 2})
    scores = rng.random(len(rows)) + 0.3 * rows.label.to_numpy()
    return metrics.report(rows, scores, (scores > 0.5).astype(int), "univfd_linear_probe", probabilities=scores / 1.3)


def write(path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def test_the_whole_metrics_table_is_narrow_under_univfd(tmp_path):
    run(["git", "init", "-q"], tmp_path)
    run(DVC + ["init", "-q"], tmp_path)
    reports = {name: a_report(i) for i, name in enumerate(DETECTORS)}
    write(tmp_path / "metrics/nn_eval.json", metrics.headline(reports["knn"], "knn"))
    write(tmp_path / "metrics/linear_eval.json", metrics.headline(reports["linear_probe"], "linear_probe"))
    write(tmp_path / "metrics/compare.json",
          compare.headline(compare.Outcome(reports={n: {"report": r} for n, r in reports.items()})))
    write(tmp_path / "metrics/format_reliance.json",  # named as compare.json's figures: a row, no column
          aligned.headline({"detectors": {n: aligned.side_by_side(r, a_report(i + 7)) for i, (n, r) in enumerate(reports.items())}}))
    write(tmp_path / "metrics/audit.json", dict(zip(shortcuts.HEADLINE, (0.9876, 19))))
    figures = {"acc": 71.25, "ap": 88.5, "acc_calibrated": 70.5, "tpr_at_fpr5": 40.25}
    points = {"clean": {"mean": figures}} | {p: {"mean": figures} for p in GRID}
    write(tmp_path / "metrics/robustness.json",
          robustness.headline({"methods": {n: {"perturbations": points} for n in DETECTORS}}))
    # the other stages' files, shaped as under univfd
    write(tmp_path / "metrics/ingest.json", {"files": {"ok": 92_412, "read": 92_412, "skipped": 0},
                                             "ignored_image_folders": 0, "source": "datasets", "test_sets": 19})
    write(tmp_path / "metrics/extract.json", {
        "dimension": 768, "images": 92_412, "rows": 92_412, "model": "ViT-L-14", "pretrained": "openai",
        "source": "backbone", "store_id": "c7900bc5f90ec838",
        "identity": {"layers": ["final"], "model": "ViT-L-14", "precision": "float32",
                     "transform": "center_crop224 mean=[0.4815, 0.4578, 0.4082] std=[0.2686, 0.2613, 0.2758]",
                     "weights": {"tag": "openai"}}})
    write(tmp_path / "metrics/attribution.json", metrics.attribution_headline(
        {level: {"acc": 91.2345, "balanced_acc": 90.1234, "ap": 95.4321} for level in ("level1", "level2", "hierarchy")}))
    for folder, prefixes in (("linear_train", [""]), ("resnet_attribution", ["level1/", "level2/"])):
        log = TrainingLog(tmp_path / "dvclive" / folder)
        for step in range(3):
            for prefix in prefixes:
                log.epoch({"train/loss": 0.123456, "train/accuracy": 0.912345, "eval/loss": 0.234567,
                           "eval/accuracy": 0.901234}, step, prefix)
        log.close({f"{p}{name}": 0.912345 for p in prefixes
                   for name in ("epochs", "best/step", "best/eval/accuracy", "best/eval/loss")})
    folds = [{"protocol": "leave_one_generator_out", "fold": s, "detectors": {n: {s: {"ap": 71.2345}} for n in DETECTORS}}
             for s in SETS]  # both protocols over the 19 generators: one fold each, windows of 4
    folds += [{"protocol": "chronological", "fold": f"window{k}",
               "detectors": {n: {"immediate_future": {"ap": 71.2345}} for n in DETECTORS}} for k in range(1, 5)]
    for name, found in protocols.headline({"folds": folds}).items():
        write(tmp_path / f"metrics/{'protocols' if name == 'mean' else f'protocols_{name}'}.json", found)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.json") if ".dvc" not in p.parts)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"metrics": files}))
    shown = run(DVC + ["metrics", "show"], tmp_path)
    width = max(len(line) for line in shown.splitlines())
    assert "knn.ap" in shown and "fusion.tpr_at_fpr5" in shown and "progan" not in shown
    assert "protocols_worst.json" in shown and "worst" not in shown.splitlines()[0]  # rows, not columns
    assert width <= WIDEST, f"`dvc metrics show` is {width} characters wide:\n{shown}"

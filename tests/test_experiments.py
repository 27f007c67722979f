"""docs/experiments.md "Comparing detectors", command by command, on a small trained demo: four queued
experiments run by two parallel workers share one feature store (each image encoded once across
all four, no corrupt shard), `dvc exp show` lists them with their params, metrics and DVCLive
columns, `dvc plots diff` draws their curves, and `dvc exp apply` promotes the best."""
import json
import re
import subprocess

import pandas as pd
import pytest
import yaml

from fakedetect.features import feature_store, shard_files
from fakedetect.features.feature_store import FeatureStore
from helpers import DVC, GIT_IDENTITY, PROJECT, private_copy

README_COMMANDS = re.search(r"# Comparing detectors\n.*?```bash\n(.*?)```", (PROJECT / "docs/experiments.md").read_text(),
                            re.DOTALL).group(1)
COMMANDS = [line.split("  #")[0].strip() for line in README_COMMANDS.splitlines() if line.strip()]


def shell(command: str, cwd, env) -> str:
    result = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def queued_grid(trained_project, tmp_path_factory):
    """A copy of the trained demo made cheaper to re-run four times: the linear probe trains at most
    10 epochs, compare fits the three detectors the grid's heads need, the protocols stage fits
    nothing and robustness scores one point (the queue, the shared store and the DVC commands under
    test do not depend on them), reproduced and committed, as a user's workspace is up to date when
    they queue experiments (so each experiment runs only the stages its params change); an empty
    feature store for the experiments, and the page's first two commands run in it."""
    import os

    project = private_copy(trained_project, tmp_path_factory.mktemp("experiments") / "project")
    store = tmp_path_factory.mktemp("shared_store")
    env = {**os.environ, **GIT_IDENTITY, "FAKEDETECT_STORE": str(store)}
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["linear"]["linear_probe"]["epochs"] = 10
    params["detectors"] = {name: params["detectors"][name] for name in ("knn", "fcnn", "linear_probe")}
    params["evaluation"]["protocols"] = []
    params["robustness"]["perturbations"] = [{"jpeg": 50}]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shell(" ".join(DVC) + " repro", project, {**env, "FAKEDETECT_STORE": str(tmp_path_factory.mktemp("baseline_store"))})
    shell("git add -A && git commit -qm 'a cheaper grid: a shorter probe, three detectors, no protocol, one robustness point'",
          project, env)
    assert COMMANDS[0].startswith("dvc exp run --queue") and COMMANDS[1].startswith("dvc exp run --run-all -j 2")
    for command in COMMANDS[:2]:
        shell(command, project, env)
    return project, store, env


def experiments(project, env) -> dict[str, dict]:
    """dvc exp show --json: each experiment's name -> its params and metrics files."""
    shown = json.loads(shell(" ".join(DVC) + " exp show --json", project, env))
    found = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp["revs"]:
                found[rev["name"]] = {"params": rev["data"]["params"]["params.yaml"]["data"],
                                      "metrics": {k: v["data"] for k, v in rev["data"]["metrics"].items()}}
    return found


def test_four_experiments_encode_each_image_once(queued_grid):
    project, store, env = queued_grid
    images = set(pd.read_csv(project / "data/preprocessed.csv").query("status == 'ok'").image_sha256)
    (entry,) = feature_store.entries(store)  # one backbone: the batch size is not part of its identity
    folder = store / entry.model_id
    reader = FeatureStore(store, entry.identity)
    keys = [key.decode() for shard in sorted(folder.glob(shard_files.SHARDS)) for key in reader._read_shard(shard)[0]]
    # Every shard verifies, and across the four experiments (two at a time, at different batch
    # sizes, so two encodings of one image would sit in different shards) each image was encoded
    # once; so was each of the robustness stage's perturbed images, stored under its own keys.
    assert len(keys) == len(set(keys))
    assert sorted(key for key in keys if key in images) == sorted(images)


def test_exp_show_lists_four_with_their_params_and_metrics(queued_grid):
    project, _, env = queued_grid
    exps = experiments(project, env)
    assert len(exps) == 4
    grid = {(e["params"]["linear"]["head"], e["params"]["extract"]["batch_size"]) for e in exps.values()}
    assert grid == {(h, b) for h in ("fcnn", "linear_probe") for b in (16, 32)}
    by_head = {}
    for e in exps.values():
        log = e["metrics"]["dvclive/linear_train/metrics.json"]
        assert set(log["best"]) >= {"step", "eval"} and log["epochs"] >= 1
        assert "level1" in e["metrics"]["dvclive/resnet_attribution/metrics.json"]
        head = e["params"]["linear"]["head"]
        by_head.setdefault(head, set()).add(e["metrics"]["metrics/linear_eval.json"][head]["ap"])
    # The features do not depend on the batch size; the heads give different results.
    assert all(len(accuracies) == 1 for accuracies in by_head.values())
    assert by_head["fcnn"] != by_head["linear_probe"]
    assert COMMANDS[2] == "dvc exp show --only-changed"
    table = shell(COMMANDS[2], project, env)
    assert all(name in table for name in exps)
    columns = shell(COMMANDS[2] + " --csv", project, env).splitlines()[0].split(",")  # the table, unabridged
    for column in ("linear.head", "extract.batch_size", "best.eval.accuracy", "fcnn.acc_calibrated"):  # DVC may prefix a file
        assert any(c.endswith(column) for c in columns), (column, columns)
    assert not any(c.endswith(("ingest.seed", "attribution.arch")) for c in columns)


def test_plots_diff_draws_the_experiments_curves(queued_grid):
    project, _, env = queued_grid
    assert COMMANDS[3].startswith("dvc plots diff $(dvc exp ls --name-only)")
    shell(COMMANDS[3], project, env)
    page = (project / "dvc_plots/index.html").read_text(encoding="utf8")
    for name in experiments(project, env):
        assert name in page
    for curve in ("linear_train/plots/metrics/eval/accuracy.tsv", "resnet_attribution/plots/metrics/level1/eval/loss.tsv"):
        assert f"dvclive/{curve}" in page, curve


def test_exp_apply_promotes_the_best(queued_grid):
    project, _, env = queued_grid
    exps = experiments(project, env)
    def accuracy(figures: dict) -> float:  # the one head's AP (a head without a calibrated threshold has no
        return next(iter(figures.values()))["ap"]  # calibrated accuracy: the tiny probe on this grid)

    best = max(exps, key=lambda name: (accuracy(exps[name]["metrics"]["metrics/linear_eval.json"]), name))
    assert COMMANDS[4] == "dvc exp apply NAME" and len(COMMANDS) == 5
    shell(COMMANDS[4].replace("NAME", best), project, env)
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["linear"]["head"] == exps[best]["params"]["linear"]["head"]
    assert params["extract"]["batch_size"] == exps[best]["params"]["extract"]["batch_size"]
    applied = json.loads((project / "metrics/linear_eval.json").read_text())
    assert accuracy(applied) == accuracy(exps[best]["metrics"]["metrics/linear_eval.json"])

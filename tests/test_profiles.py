"""Profiles: one command switches params.yaml to another setting; the notebook's features
flow through `dvc repro` without any image stage and land beside the published numbers."""
import json
import re
import shutil

import pytest
import yaml

from fakedetect.params import ParamsError, load_params
from fakedetect.profiles import apply_profile
from helpers import DVC, PROJECT, copy_project, run

IMAGE_STAGES = ("ingest", "preprocess", "extract_clip", "resnet_attribution", "robustness")

PROFILES = sorted(p.stem for p in (PROJECT / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.fast
def test_each_profile_applies_validates_and_keeps_comments(tmp_path, name):
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    apply_profile(name, tmp_path / "params.yaml", PROJECT / "profiles")
    params = load_params(tmp_path / "params.yaml")
    overlay = yaml.safe_load((PROJECT / "profiles" / f"{name}.yaml").read_text())
    for section, values in overlay.items():
        if not isinstance(values, dict):
            assert getattr(params, section) == values
            continue
        applied = getattr(params, section)
        for key, value in values.items():
            current = applied[key] if isinstance(applied, dict) else getattr(applied, key)  # detectors: a dict
            assert current is not None or value is None
    text = (tmp_path / "params.yaml").read_text()
    assert "# Parameters of every stage" in text and "# 0 = one process per CPU core" in text
    assert [line for line in text.splitlines() if line != line.rstrip()] == []  # wrapped lists left trailing spaces


@pytest.mark.fast
def test_unknown_profile_lists_the_known_ones(tmp_path):
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    with pytest.raises(ParamsError, match="no profile 'univdf'.*univfd"):
        apply_profile("univdf", tmp_path / "params.yaml", PROJECT / "profiles")


def _notebook_features_here(project, shared_fixtures) -> None:
    """Apply the profile in `project`, its feature files read from `shared_fixtures`."""
    apply_profile("notebook_features", project / "params.yaml", project / "profiles")
    params = yaml.safe_load((project / "params.yaml").read_text())
    for entry in params["extract"]["imports"]["notebook"]:
        entry["file"] = str(shared_fixtures / "seed_clip_features" / entry["file"].rsplit("/", 1)[1])
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def test_notebook_features_run_through_dvc_without_image_stages(tmp_path, shared_fixtures):
    """A fresh clone, the profile, plain `dvc repro`: no image stage exists, so nothing builds, reads
    or encodes images; the classifiers reproduce the notebook's table, and compare runs the detectors
    that imported features can serve."""
    project = copy_project(tmp_path)
    _notebook_features_here(project, shared_fixtures)
    stages = _stages_run(run(DVC + ["repro"], project))
    assert sorted(stages) == ["compare", "import_features@notebook", "linear_eval", "linear_train", "nn_eval", "tsne"]
    for folder in ("data/demo", "data/manifest.csv", "data/preprocessed", "data/preprocessed.csv"):
        assert not (project / folder).exists(), folder
    nn = json.loads((project / "reports/nn_eval.json").read_text())["test_sets"]["notebook_glide_100"]
    assert 75.2 <= nn["acc"] <= 75.3 and nn["published_acc"] == 75.3
    linear = json.loads((project / "reports/linear_eval.json").read_text())["test_sets"]
    for name, published in (("notebook_cyclegan", 97.3), ("notebook_dalle", 92.9), ("notebook_glide_100_dm", 86.9)):
        assert linear[name]["published_acc"] == published
        assert abs(linear[name]["acc"] - published) < 2.5, (name, linear[name]["acc"])
    assert json.loads((project / "metrics/extract.json").read_text())["source"] == "import"
    # compare runs the detectors that need only the features; those that need per-block features or
    # the images (noisy views) are skipped, each with its reason in the report.
    compared = json.loads((project / "reports/compare.json").read_text())
    assert {"knn", "fcnn", "linear_probe"} <= set(compared["detectors"])
    assert {"blocks", "noise_sensitivity"} <= set(compared["skipped"])
    assert all(reason for reason in compared["skipped"].values())
    assert compared["detectors"]["knn"]["report"]["test_sets"]["notebook_glide_100"]["acc"] == nn["acc"]
    assert "up to date" in run(DVC + ["status"], project)
    # Plots are declared with their stages: none is missing, none belongs to an image stage.
    shown = json.loads(run(DVC + ["plots", "show", "--json"], project))
    assert not shown.get("errors") and shown["data"]
    assert not [name for name in shown["data"] if "attribution" in name or "robustness" in name]


def test_a_workspace_that_ran_the_demo_switches_without_image_work(trained_project, tmp_path, shared_fixtures):
    """After the demo ran, applying the profile leaves no image stage for `dvc repro --dry` to list."""
    project = tmp_path / "project"
    shutil.copytree(trained_project, project, symlinks=True)
    _notebook_features_here(project, shared_fixtures)
    stages = _stages_run(run(DVC + ["repro", "--dry"], project))
    assert "import_features@notebook" in stages
    assert [s for s in stages if s.split("@")[0] in IMAGE_STAGES] == []

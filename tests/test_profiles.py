"""Profiles: one command switches params.yaml to another setting; the notebook's features
flow through `dvc repro` without any image stage and land beside the published numbers."""
import json
import re
import shutil

import pytest
import yaml

from fakedetect import cli
from fakedetect.params import ParamsError, load_params
from fakedetect.profiles import apply_profile
from helpers import DVC, PROJECT, copy_project, private_copy, run

IMAGE_STAGES = ("ingest", "preprocess", "extract_clip", "resnet_attribution", "robustness")

PROFILES = sorted(p.stem for p in (PROJECT / "profiles").glob("*.yaml"))


def assert_holds(actual, expected, where: str) -> None:
    """`actual` holds every value of `expected`: a non-empty mapping key by key (`actual` may have
    more keys), a list item by item, anything else (an empty mapping included) equal."""
    if isinstance(expected, dict) and expected:
        assert isinstance(actual, dict), where
        for key, value in expected.items():
            assert key in actual, f"{where}.{key}"
            assert_holds(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (where, actual)
        for i, (got, value) in enumerate(zip(actual, expected)):
            assert_holds(got, value, f"{where}.{i}")
    else:
        assert actual == expected, (where, actual, expected)


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.fast
def test_each_profile_applies_validates_and_keeps_comments(tmp_path, name):
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    apply_profile(name, tmp_path / "params.yaml", PROJECT / "profiles")
    params = load_params(tmp_path / "params.yaml")
    overlay = yaml.safe_load((PROJECT / "profiles" / f"{name}.yaml").read_text())
    # Every value the profile sets is in the file and in the validated params (which add defaults).
    assert_holds(yaml.safe_load((tmp_path / "params.yaml").read_text()), overlay, name)
    assert_holds(params.model_dump(mode="json"), overlay, name)
    text = (tmp_path / "params.yaml").read_text()
    assert "# Parameters of every stage" in text and "# 0 = one process per CPU core" in text
    assert [line for line in text.splitlines() if line != line.rstrip()] == []  # wrapped lists left trailing spaces


@pytest.mark.parametrize("name", [name for name in PROFILES if name != "demo"])
@pytest.mark.fast
def test_the_demo_profile_restores_the_shipped_values(tmp_path, monkeypatch, name):
    """`fakedetect profile NAME`, then `fakedetect profile demo`: params.yaml holds the committed
    values again (the demo profile sets every key that the others set)."""
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(PROJECT / "profiles", tmp_path / "profiles")
    monkeypatch.chdir(tmp_path)
    shipped = yaml.safe_load((PROJECT / "params.yaml").read_text())
    assert cli.main(["profile", name]) == 0
    assert yaml.safe_load((tmp_path / "params.yaml").read_text()) != shipped
    assert cli.main(["profile", "demo"]) == 0
    assert yaml.safe_load((tmp_path / "params.yaml").read_text()) == shipped


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
    assert sorted(stages) == ["compare", "import_features@notebook", "linear_eval", "linear_train", "nn_eval",
                              "protocols", "tsne"]
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
    # the protocols stage re-splits the imported rows (each row its own photograph) and holds out a generator
    protocols = json.loads((project / "reports/protocols.json").read_text())
    assert protocols["protocols"] == ["leave_one_generator_out", "chronological"]
    assert set(protocols["choice"]["held_out_aps"]) == {"knn", "fcnn", "linear_probe"}
    assert "up to date" in run(DVC + ["status"], project)
    # Plots are declared with their stages: none is missing, none belongs to an image stage.
    shown = json.loads(run(DVC + ["plots", "show", "--json"], project))
    assert not shown.get("errors") and shown["data"]
    assert not [name for name in shown["data"] if "attribution" in name or "robustness" in name]


def test_a_workspace_that_ran_the_demo_switches_without_image_work(trained_project, tmp_path, shared_fixtures):
    """After the demo ran, applying the profile leaves no image stage for `dvc repro --dry` to list."""
    project = private_copy(trained_project, tmp_path / "project")
    _notebook_features_here(project, shared_fixtures)
    stages = _stages_run(run(DVC + ["repro", "--dry"], project))
    assert "import_features@notebook" in stages
    assert [s for s in stages if s.split("@")[0] in IMAGE_STAGES] == []

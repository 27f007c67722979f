"""Profiles: one command switches params.yaml to another setting; the notebook's features
flow through the classifier stages and land beside the published numbers."""
import json
import shutil

import pytest
import yaml

from fakedetect.params import ParamsError, load_params
from fakedetect.profiles import apply_profile
from helpers import PROJECT, run_stage

PROFILES = sorted(p.stem for p in (PROJECT / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("name", PROFILES)
def test_each_profile_applies_validates_and_keeps_comments(tmp_path, name):
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    apply_profile(name, tmp_path / "params.yaml", PROJECT / "profiles")
    params = load_params(tmp_path / "params.yaml")
    overlay = yaml.safe_load((PROJECT / "profiles" / f"{name}.yaml").read_text())
    for section, values in overlay.items():
        for key, value in values.items():
            assert getattr(getattr(params, section), key) is not None or value is None
    text = (tmp_path / "params.yaml").read_text()
    assert "# Parameters of every stage" in text and "# 0 = one process per CPU core" in text
    assert [line for line in text.splitlines() if line != line.rstrip()] == []  # wrapped lists left trailing spaces


def test_unknown_profile_lists_the_known_ones(tmp_path):
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    with pytest.raises(ParamsError, match="no profile 'univdf'.*univfd"):
        apply_profile("univdf", tmp_path / "params.yaml", PROJECT / "profiles")


def test_notebook_features_through_the_stages(tmp_path, shared_fixtures):
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    apply_profile("notebook_features", tmp_path / "params.yaml", PROJECT / "profiles")
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    for entry in params["extract"]["imports"]:
        entry["file"] = str(shared_fixtures / "seed_clip_features" / entry["file"].rsplit("/", 1)[1])
    for stage in ("extract_clip", "nn_eval", "linear_train", "linear_eval"):
        result = run_stage(stage, tmp_path, params if stage == "extract_clip" else None)
        assert result.returncode == 0, result.stderr
    nn = json.loads((tmp_path / "reports/nn_eval.json").read_text())["test_sets"]["notebook_glide_100"]
    assert 75.2 <= nn["acc"] <= 75.3 and nn["published_acc"] == 75.3
    linear = json.loads((tmp_path / "reports/linear_eval.json").read_text())["test_sets"]
    for name, published in (("notebook_cyclegan", 97.3), ("notebook_dalle", 92.9), ("notebook_glide_100_dm", 86.9)):
        assert linear[name]["published_acc"] == published
        assert abs(linear[name]["acc"] - published) < 3.0, (name, linear[name]["acc"])

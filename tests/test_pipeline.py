"""The DVC pipeline as users run it: `dvc repro` in a fresh copy, then up to date and clean."""
from pathlib import Path

import pytest
import yaml

from fakedetect import artifacts
from helpers import DVC, copy_project, private_copy, run

ARTIFACTS = {name: path for name, path in vars(artifacts).items() if name.isupper()}


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("project"))


def test_repro_then_up_to_date_and_clean(project_copy):
    out = run(DVC + ["repro", "preprocess"], project_copy)
    assert "Running stage 'ingest@demo'" in out and "Running stage 'preprocess@demo'" in out
    assert (project_copy / "plots/preprocess.png").stat().st_size > 10_000
    again = run(DVC + ["repro", "preprocess"], project_copy)
    assert "didn't change, skipping" in again and "Running stage" not in again
    assert "up to date" in run(DVC + ["status", "preprocess"], project_copy)
    assert "ingest.json" in run(DVC + ["metrics", "show"], project_copy)


def test_whole_pipeline_on_a_fresh_copy(trained_project, tmp_path):
    project = private_copy(trained_project, tmp_path / "project")
    assert "Data and pipelines are up to date." in run(DVC + ["status"], project)
    shown = run(DVC + ["metrics", "show"], project)
    for name in ("ingest.json", "extract.json", "nn_eval.json", "linear_eval.json"):
        assert name in shown
    # A new batch size changes no feature: of the stages, only the one that encodes re-runs for it (the
    # stages after it re-run only if the features it writes differ); a new backbone changes every stage
    # that encodes images or names the backbone.
    for key, value, changed in (("batch_size", 8, ["extract_clip@demo"]),
                                ("model", "ViT-B-32", ["compare", "extract_clip@demo", "protocols", "robustness@demo",
                                                       "tsne"])):
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["extract"][key] = value
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        status = yaml.safe_load(run(DVC + ["status", "--json"], project))
        assert sorted(name for name, changes in status.items()
                      if any("params.yaml" in change.get("changed deps", {}) for change in changes)) == changed, status
        run(["git", "checkout", "params.yaml"], project)


@pytest.mark.fast
def test_artifact_paths_are_the_ones_dvc_yaml_declares():
    """The stage scripts and the predictor name their files through fakedetect.artifacts."""
    declared = set()
    for stage in yaml.safe_load((Path(__file__).parents[1] / "dvc.yaml").read_text())["stages"].values():
        stage = stage.get("do", stage)  # a foreach group: one definition for every entry
        for kind in ("outs", "metrics", "plots"):
            declared |= {entry if isinstance(entry, str) else next(iter(entry)) for entry in stage.get(kind, [])}
    undeclared = {name: path for name, path in ARTIFACTS.items()
                  if not any(d == path or d.startswith(path + "/") for d in declared)}
    assert not undeclared


def test_every_artifact_exists_after_repro(trained_project):
    assert [path for path in ARTIFACTS.values() if not (trained_project / path).exists()] == []

"""The DVC pipeline as users run it: `dvc repro` in a fresh copy, then up to date and clean."""
from pathlib import Path

import pytest

from helpers import DVC, copy_project, run


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("project"))


def test_repro_then_up_to_date_and_clean(project_copy):
    out = run(DVC + ["repro", "preprocess"], project_copy)
    assert "Running stage 'ingest'" in out and "Running stage 'preprocess'" in out
    assert (project_copy / "plots/preprocess.png").stat().st_size > 10_000
    again = run(DVC + ["repro", "preprocess"], project_copy)
    assert "didn't change, skipping" in again and "Running stage" not in again
    assert "up to date" in run(DVC + ["status", "preprocess"], project_copy)
    assert "ingest.json" in run(DVC + ["metrics", "show"], project_copy)


def test_whole_pipeline_on_a_fresh_copy(trained_project):
    assert "Data and pipelines are up to date." in run(DVC + ["status"], trained_project)
    shown = run(DVC + ["metrics", "show"], trained_project)
    for name in ("ingest.json", "extract.json", "nn_eval.json", "linear_eval.json"):
        assert name in shown

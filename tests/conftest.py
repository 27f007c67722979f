"""Shared test fixtures: the project root, and the real-data fixtures in ../shared (skipped when absent)."""
import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = Path(os.environ.get("FAKEDETECT_FIXTURES", PROJECT.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session", autouse=True)
def feature_store_in_tmp(tmp_path_factory) -> Path:
    """Every stage a test runs (and every process it starts) keeps features in a store under the
    test's temporary folder, never in the user's cache folder."""
    from fakedetect.features.feature_store import STORE_ENV

    store = tmp_path_factory.mktemp("feature_store")
    previous = os.environ.get(STORE_ENV)
    os.environ[STORE_ENV] = str(store)
    yield store
    if previous is None:
        del os.environ[STORE_ENV]
    else:
        os.environ[STORE_ENV] = previous


@pytest.fixture
def shared_fixtures() -> Path:
    """../shared/fixtures beside the checkout (as in CI); a user's clone has none, so skip."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"real-data fixtures not found at {SHARED_FIXTURES} (they live in ../shared beside the checkout)")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory) -> Path:
    """A fresh copy of the project on which `dvc repro` ran the whole pipeline on the small demo
    (`small_demo_params` in tests/helpers.py: few images, two attribution epochs, a three-point
    robustness grid), committed as a user would: built once per session and shared by every test
    file that needs trained models (predict, remote, experiments, robustness, plots, profiles,
    engines)."""
    from helpers import DVC, copy_project, run

    project = copy_project(tmp_path_factory.mktemp("trained"))
    run(DVC + ["repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "run the pipeline"], project)
    return project

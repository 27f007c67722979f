"""Shared test fixtures: the project root, the real-data fixtures in ../shared (skipped when absent),
the small trained project, and the order in which pytest-xdist's workers take the test files."""
import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = Path(os.environ.get("FAKEDETECT_FIXTURES", PROJECT.parent / "shared" / "fixtures"))
# DVC in the repositories tests create (`dvc init`) sends no usage analytics, as the project's .dvc/config says.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# Ray instances that tests start listen on loopback only, as the engine's own (fakedetect.features.ray_engine).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# `make test` runs two pytest-xdist workers, each taking whole test files (--dist loadfile) in the
# order below: the longest first, so that both workers end together. The queued experiments build
# the trained project while the other worker runs the long files that need none (the real-benchmark
# path, the notebook's features, the classifier stages), so that neither waits for it.
LONGEST_FIRST = ["test_experiments.py", "test_real_path.py", "test_profiles.py", "test_classifiers.py",
                 "test_bench.py", "test_bench_data_path.py", "test_predict.py", "test_engines.py",
                 "test_format_verdicts.py", "test_attribution.py", "test_remote.py", "test_serve.py"]


def pytest_collection_modifyitems(items):
    """Put the files of LONGEST_FIRST first, in its order; the others keep theirs."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


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
    robustness grid), committed as a user would: built once per run and shared by every test
    file that needs trained models (predict, remote, experiments, robustness, plots, profiles,
    engines). Under pytest-xdist the first worker that needs it builds it, holding a file lock in
    the run's temporary folder, and the other waits and uses the same one. Tests only read it:
    one that runs DVC in it or changes it works on `private_copy` (tests/helpers.py)."""
    from filelock import FileLock

    from helpers import DVC, copy_project, run

    # Each worker's temporary folder lies in the run's own; a run without workers has only its own.
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    project, built = root / "trained", root / "trained.built"
    with FileLock(root / "trained.lock"):
        if not built.exists():
            if project.exists():  # another worker's build that failed: fail here too, not on half a project
                pytest.fail(f"building the trained project failed in another worker: {project}")
            project.mkdir()
            copy_project(project)
            run(DVC + ["repro"], project)
            run(["git", "add", "-A"], project)
            run(["git", "commit", "-qm", "run the pipeline"], project)
            built.touch()
    return project

"""The DVC pipeline as users run it: `dvc repro` in a fresh copy, then up to date and clean."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import PROJECT, small_demo_params

DVC = [sys.executable, "-m", "dvc"]


def run(cmd, cwd):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory) -> Path:
    """The project's files as git sees them (tracked or not ignored), in a new git repository."""
    folder = tmp_path_factory.mktemp("project")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=PROJECT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (PROJECT / name).is_file() and not name.startswith(("data/", "metrics/", "plots/")):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / name, folder / name)
    (folder / "dvc.lock").unlink(missing_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(small_demo_params(), sort_keys=False))
    run(["git", "init", "-q"], folder)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], folder)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"], folder)
    return folder


def test_repro_then_up_to_date_and_clean(project_copy):
    out = run(DVC + ["repro", "preprocess"], project_copy)
    assert "Running stage 'ingest'" in out and "Running stage 'preprocess'" in out
    assert (project_copy / "plots/preprocess.png").stat().st_size > 10_000
    again = run(DVC + ["repro", "preprocess"], project_copy)
    assert "didn't change, skipping" in again and "Running stage" not in again
    assert "up to date" in run(DVC + ["status", "preprocess"], project_copy)
    assert "ingest.json" in run(DVC + ["metrics", "show"], project_copy)

"""Helpers the tests share: running a stage as DVC does, and small image files."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

PROJECT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free TCP port on the loopback address, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_stage(name: str, cwd: Path, params: dict | None = None, timeout: int = 600,
              env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python stages/<name>.py` in `cwd` (after writing `params` there as params.yaml), in
    `env` (default: this process's environment)."""
    if params is not None:
        (cwd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return subprocess.run([sys.executable, str(PROJECT / "stages" / f"{name}.py")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def stage_env(**extra) -> dict:
    """This process's environment without HF_HUB_OFFLINE (a test that wants it says so), the
    project on PYTHONPATH, and `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    return env | {"PYTHONPATH": str(PROJECT)} | extra


def assert_stopped(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A stage stopped on bad input: exit status 1 and a message with every fragment, no traceback."""
    assert result.returncode == 1
    for fragment in fragments:
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def write_image(path: Path, size=(48, 40), mode="RGB", seed=0, **save_args) -> Path:
    """A small random image of the given mode, saved by Pillow according to the extension."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save_args)
    return path


# The small demo's grid: three points keep a JPEG series in order (90 before 50), a blur, and the
# jpeg50 point that `dvc metrics show` prints; the full demo's ten points cost encodings, not checks.
SMALL_ROBUSTNESS_GRID = [{"jpeg": 90}, {"jpeg": 50}, {"blur": 2}]


def small_demo_params(**ingest) -> dict:
    """The default params with a demo small enough for tests: few images per class, two
    attribution epochs (every level, class and curve exists after one; two make a curve) and
    the three-point robustness grid above."""
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["ingest"]["demo"].update(train_per_class=12, val_per_class=4, test_per_class=6)
    params["attribution"].update(max_epochs=2)
    params["robustness"]["perturbations"] = [dict(p) for p in SMALL_ROBUSTNESS_GRID]
    params["ingest"].update(ingest)
    return params


DVC = [sys.executable, "-m", "dvc"]
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org",
                "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org"}


def run(cmd, cwd):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900,
                            env={**os.environ, **GIT_IDENTITY})
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def copy_project(folder: Path) -> Path:
    """The project's files as git sees them (tracked or not ignored), with the small demo's
    params, committed in a new git repository: a user's fresh clone."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=PROJECT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (PROJECT / name).is_file() and not name.startswith(("data/", "metrics/", "plots/", "reports/")):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / name, folder / name)
    (folder / "dvc.lock").unlink(missing_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(small_demo_params(), sort_keys=False))
    run(["git", "init", "-q"], folder)
    run(["git", "add", "-A"], folder)
    run(["git", "commit", "-qm", "copy"], folder)
    return folder


def private_copy(trained_project: Path, folder: Path) -> Path:
    """A copy of the shared trained project (conftest.py), for a test that runs DVC in it or changes
    it: the shared one is only read, by tests that may run at the same time in another worker."""
    shutil.copytree(trained_project, folder, symlinks=True)
    return folder


# Every bench script, run with `--smoke` by two test files that pytest-xdist's workers take whole: those
# that train or load models (tests/test_bench.py), and the rest, the data path's (tests/test_bench_data_path.py),
# where a new bench lands unless it is named here.
BENCHES = sorted(path.name for path in (PROJECT / "bench").glob("*.py"))
MODEL_BENCHES = {"attribution.py", "demo_backbone.py", "detector_numerics.py", "detectors.py", "fcnn_numerics.py",
                 "float16.py", "predict.py", "serve.py"}

# A bench's figure: `name: value`; the name may hold spaces, the value colons.
BENCH_FIGURE = re.compile(r"[^\s:#][^:]*: \S.*")


def files_of(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` but Python's bytecode caches: path -> (size, mtime in ns)."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in folder.rglob("*") if path.is_file() and "__pycache__" not in path.parts}


def run_bench_smoke(project: Path, name: str) -> None:
    """`python bench/NAME --smoke` from `project` (a trained copy, whose bench/ is this one's): it exits 0,
    prints only `name: value` figures (and `#` notes), at least one, and leaves the project's files as they were."""
    before = files_of(project)
    result = subprocess.run([sys.executable, f"bench/{name}", "--smoke"], cwd=project,
                            env=stage_env(PYTHONPATH=str(project), TF_CPP_MIN_LOG_LEVEL="2"),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"bench/{name} --smoke failed:\n{result.stderr[-4000:]}"
    lines = [line for line in result.stdout.splitlines() if line.strip() and not line.startswith("#")]
    assert lines, f"bench/{name} printed no figure"
    not_figures = [line for line in lines if not BENCH_FIGURE.fullmatch(line)]
    assert not_figures == [], f"bench/{name} printed lines that are no `name: value` figure: {not_figures}"
    after = files_of(project)
    changed = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
    assert not changed, f"bench/{name} --smoke wrote into the project: {sorted(changed)}"

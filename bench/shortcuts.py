"""What the shortcut audit and the format-aligned condition add to the demo's `dvc repro`, and that a second
run encodes no aligned image again. In a fresh copy of the project (a user's clone) with an empty feature
store: the pipeline up to `compare` with the aligned condition off, then the audit stage timed, then
`compare` with it on (the default, JPEG 96) and once more forced. Prints `name: value` lines; the budget
is 60 s for the audit and the aligned scoring together. `--smoke`: the tests' small demo and the knn
detector alone (the default: the demo as params.yaml has it, which encodes its 2,500 images once:
minutes on 2 cores).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import DVC, PROJECT, copy_project  # noqa: E402

BUDGET_S = 60.0
ENCODED = re.compile(r"aligned condition: (\d+) images encoded in this run")


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return time.perf_counter() - start, result.stdout + result.stderr


def set_aligned(project: Path, jpeg: int | None) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["aligned"]["jpeg"] = jpeg
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the tests' small demo")
    smoke = parser.parse_args().smoke
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(Path(tmp) / "project")
        if not smoke:
            (project / "params.yaml").write_text((PROJECT / "params.yaml").read_text())
        else:  # one detector: the smoke run checks that the bench runs, not what the aligned scoring costs
            params = yaml.safe_load((project / "params.yaml").read_text())
            params["detectors"] = {"knn": params["detectors"]["knn"]}
            (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = {**os.environ, "FAKEDETECT_STORE": str(Path(tmp) / "store"), "PYTHONPATH": str(project)}
        set_aligned(project, None)
        timed(DVC + ["repro", "audit", "compare"], project, env)
        compare_off, _ = timed(DVC + ["repro", "-f", "-s", "compare"], project, env)
        audit, _ = timed([sys.executable, "stages/audit.py"], project, env)
        set_aligned(project, 96)
        compare_on, first = timed(DVC + ["repro", "-s", "compare"], project, env)
        compare_again, second = timed(DVC + ["repro", "-f", "-s", "compare"], project, env)
    added = compare_on - compare_off
    print(f"demo: {'small (tests)' if smoke else 'params.yaml'}")
    print(f"audit_stage_s: {audit:.1f}")
    print(f"compare_aligned_off_s: {compare_off:.1f}")
    print(f"compare_aligned_on_first_s: {compare_on:.1f}")
    print(f"compare_aligned_on_second_s: {compare_again:.1f}")
    print(f"aligned_added_first_s: {added:.1f}")
    print(f"audit_and_aligned_added_s: {audit + added:.1f}")
    print(f"ratio_to_budget_{BUDGET_S:.0f}_s: {(audit + added) / BUDGET_S:.2f}")
    print(f"aligned_images_encoded_first: {ENCODED.search(first).group(1)}")
    print(f"aligned_images_encoded_second: {ENCODED.search(second).group(1)}")


if __name__ == "__main__":
    main()

"""Benchmark of the detector registry on the demo's stored features: each configured detector's fit
and score seconds (compare.run in this process, the noisy views read from a warm feature store),
then the compare stage's wall and CPU time as DVC runs it (a fresh process, warm store), and the total.
Target: at most 60 s in all on 2 cores, the Keras FCNN included.

Usage: python bench/detectors.py [PROJECT] [--smoke]  (a project whose data/features hold the demo's features,
default: this one; FAKEDETECT_STORE or extract.store: the warm store). The work is the project's data:
`--smoke`: the knn and noise_sensitivity detectors only (seconds; the figures mean nothing).
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import torch  # noqa: E402,F401  (before Keras)

from fakedetect.evaluation import compare  # noqa: E402
from fakedetect.features import feature_files  # noqa: E402
from fakedetect.params import load_params  # noqa: E402


SMOKE = "--smoke" in sys.argv
SMOKE_DETECTORS = ("knn", "noise_sensitivity")  # the cheapest fit, and the one that reads noisy views


def main() -> None:
    named = [arg for arg in sys.argv[1:] if arg != "--smoke"]
    project = Path(named[0] if named else ".").resolve()
    os.chdir(project)
    from fakedetect.features.noisy_views import NoisyViews  # the stage's own noisy-view source

    with tempfile.TemporaryDirectory(prefix="bench-detectors-") as folder:  # the stage writes its outputs here
        shutil.copytree(project / "data" / "features", Path(folder) / "data" / "features")
        raw = yaml.safe_load((project / "params.yaml").read_text())
        if SMOKE:
            raw["detectors"] = {name: raw["detectors"][name] for name in SMOKE_DETECTORS}
        (Path(folder) / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        for name in ("data/preprocessed",):  # the noisy views read the images the rows name
            if (project / name).exists():
                os.symlink(project / name, Path(folder) / name)

        params = load_params(Path(folder) / "params.yaml")
        matrix, rows = feature_files.load_features("data/features")
        layers = feature_files.load_layers("data/features", matrix.shape[1])
        noisy = NoisyViews(params, rows)
        try:
            outcome = compare.run(matrix, rows, layers, params.detectors, noisy)
        finally:
            noisy.close()
        for name, seconds in outcome.seconds.items():
            print(f"{name}_fit_s: {seconds['fit']:.2f}")
            print(f"{name}_score_s: {seconds['score']:.3f}")
        for name, why in outcome.skipped.items():
            print(f"{name}_skipped: {why}")
        print(f"noisy_views_encoded: {noisy.computed}")

        env = os.environ | {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "stages" / "compare.py")], cwd=folder, env=env, check=True,
                       capture_output=True)
        stage_s = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"compare_stage_warm_s: {stage_s:.1f}")
    print(f"compare_stage_warm_cpu_s: {cpu_s:.1f}")  # user + system: less sensitive to a busy machine
    print(f"fit_and_score_total_s: {sum(s['fit'] + s['score'] for s in outcome.seconds.values()):.1f}")
    print(f"compare_stage_target_ratio: {stage_s / 60:.2f}")


if __name__ == "__main__":
    main()

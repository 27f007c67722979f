"""The bench scripts of the data path (ingest, extraction, the store, remotes, experiments, robustness,
crop policies) run with `--smoke` on a small demo's finished run: tests/test_bench.py's other half, a
file of its own so that pytest-xdist's two workers share the benches."""
import pytest

from helpers import BENCHES, MODEL_BENCHES, run_bench_smoke


@pytest.mark.parametrize("name", [name for name in BENCHES if name not in MODEL_BENCHES])
def test_bench_runs_with_smoke_sizes(trained_project, name):
    run_bench_smoke(trained_project, name)

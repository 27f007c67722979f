"""Benchmark of the nn_eval search: exact top-1 cosine, 10,000 queries against a 100,000 x 768 bank;
approximate search (nn.backend faiss_ivf) against exact on a 1,000,000-row bank.

Prints the stage's search time, faiss IndexFlatIP's, a per-query Python loop's (100
queries, extrapolated) and the ratios (targets: at most 1.5x faiss, at least 10x faster
than the loop); then, in a fresh process, the peak resident memory of a search at
UnivFD's scale (720k x 768 bank, 34k queries) with the chunk size of params.yaml.
Every time includes normalising the features, from raw features to similarities.
Then, in a fresh process: a 1,000,000 x 768 bank drawn from a seeded Gaussian mixture (clustered,
as real features are, not uniform noise), 1,000 queries from the same mixture; exact search (numpy
backend) and the approximate one (IVF-PQ, 96-byte codes, 16 of 1,024 cells probed, the 256 best candidates per
class re-ranked by their exact rows) timed in the same process, so that their ratio is fair on a shared
machine (the load average is printed beside them); the index's build time, the time to find and
load it again (the bank hashed, the file read), recall@1 against exact search, the index's size
and the process's peak resident memory (the bank itself is 2.9 GB of it).
Targets: recall@1 >= 0.99 at >= 5x exact speed.
Usage: nice -n 10 python bench/nn.py [--smoke] [--peak-memory | --approximate]
(--smoke: tiny sizes, seconds; its figures only show that the bench runs)
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakedetect.detectors import neighbours  # noqa: E402
from fakedetect.params import load_params  # noqa: E402

SMOKE = "--smoke" in sys.argv
DIM = 768
BANK, QUERIES, LOOP_QUERIES = (2_000, 200, 20) if SMOKE else (100_000, 10_000, 100)
UNIVFD_BANK, UNIVFD_QUERIES = (5_000, 500) if SMOKE else (720_000, 34_000)


def features(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal((n, DIM), dtype=np.float32)


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def faiss_top1(queries: np.ndarray, bank: np.ndarray) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatIP(DIM)
    index.add(neighbours.normalise(bank))
    return index.search(neighbours.normalise(queries), 1)[0][:, 0]


def loop_top1(queries: np.ndarray, bank: np.ndarray) -> np.ndarray:
    unit_bank = neighbours.normalise(bank)
    return np.array([(unit_bank @ query).max() for query in neighbours.normalise(queries)])


def speed(chunk_size: int) -> None:
    rng = np.random.default_rng(0)
    bank, queries = features(rng, BANK), features(rng, QUERIES)
    labels = rng.integers(0, 2, BANK)
    found, stage_s = timed(lambda: neighbours.search(queries, bank, labels, k=1, chunk_size=chunk_size))
    stage_top1 = np.maximum(found.real[:, 0], found.fake[:, 0])
    faiss_sims, faiss_s = timed(lambda: faiss_top1(queries, bank))
    loop_sims, loop_s = timed(lambda: loop_top1(queries[:LOOP_QUERIES], bank))
    loop_s_all = loop_s * QUERIES / LOOP_QUERIES
    print(f"bank_rows: {BANK}")
    print(f"queries: {QUERIES}")
    print(f"chunk_size: {chunk_size}")
    print(f"stage_search_s: {stage_s:.2f}")
    print(f"faiss_indexflatip_s: {faiss_s:.2f}")
    print(f"python_loop_{LOOP_QUERIES}_queries_s: {loop_s:.2f}")
    print(f"python_loop_extrapolated_s: {loop_s_all:.1f}")
    print(f"stage_over_faiss_ratio: {stage_s / faiss_s:.2f}")
    print(f"loop_over_stage_speedup: {loop_s_all / stage_s:.1f}")
    print(f"max_abs_diff_top1_vs_faiss: {np.abs(stage_top1 - faiss_sims).max():.2e}")
    print(f"max_abs_diff_top1_vs_loop: {np.abs(stage_top1[:LOOP_QUERIES] - loop_sims).max():.2e}")


def peak_memory(chunk_size: int) -> None:
    """Runs in its own process so that its peak resident memory is the search's alone."""
    rng = np.random.default_rng(1)
    bank, queries = features(rng, UNIVFD_BANK), features(rng, UNIVFD_QUERIES)
    labels = rng.integers(0, 2, UNIVFD_BANK)
    inputs_gb = (bank.nbytes + queries.nbytes + labels.nbytes) / 2**30
    _, seconds = timed(lambda: neighbours.search(queries, bank, labels, k=1, chunk_size=chunk_size))
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"univfd_scale_bank_rows: {UNIVFD_BANK}")
    print(f"univfd_scale_queries: {UNIVFD_QUERIES}")
    print(f"univfd_scale_inputs_gb: {inputs_gb:.2f}")
    print(f"univfd_scale_peak_rss_gb: {peak_gb:.2f}")
    print(f"univfd_scale_search_s: {seconds:.1f}")


APPROX_BANK, APPROX_QUERIES, CLUSTERS = (5_000, 100, 50) if SMOKE else (1_000_000, 1_000, 2_000)
# The settings measured for 768-d features (docs/capacity.md "Approximate search"); the smoke run's train
# a small product quantiser in a second (its figures mean nothing).
SETTINGS = {"nlist": 16 if SMOKE else 1024, "nprobe": 16, "pq_bytes": 16 if SMOKE else 96, "refine": 256,
            "train_rows": 2_000 if SMOKE else 20_000}
TIE = 1e-5  # re-ranked and exact similarities of the same row differ by float32 rounding only


def mixture(rng: np.random.Generator, centres: np.ndarray, spreads: np.ndarray, n: int) -> np.ndarray:
    """n rows of a Gaussian mixture: a centre each, plus noise at that cluster's spread, in blocks."""
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        which = rng.integers(0, len(centres), stop - start)
        out[start:stop] = centres[which] + spreads[which, None] * rng.standard_normal((stop - start, DIM), dtype=np.float32)
    return out


def approximate() -> None:
    """Runs in its own process: its peak resident memory is this bank's and this index's."""
    chunk_size = load_params(Path(__file__).resolve().parents[1] / "params.yaml").nn.chunk_size
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    spreads = rng.uniform(0.3, 1.2, CLUSTERS).astype(np.float32)  # some clusters tight, some overlapping
    bank, queries = mixture(rng, centres, spreads, APPROX_BANK), mixture(rng, centres, spreads, APPROX_QUERIES)
    labels = rng.integers(0, 2, APPROX_BANK)
    rows = np.arange(APPROX_BANK)
    ivf = neighbours.Ivf(**SETTINGS, recall_queries=APPROX_QUERIES)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_nn_index_") as cache:
        built, build_s = timed(lambda: neighbours.IvfBank(bank, rows, labels, ivf, chunk_size, cache_folder=cache))
        index, reuse_s = timed(lambda: neighbours.IvfBank(bank, rows, labels, ivf, chunk_size, cache_folder=cache))
        assert not any(built.reused.values()) and all(index.reused.values())
        exact, exact_s = timed(lambda: neighbours.search(queries, bank, labels, k=1, chunk_size=chunk_size))
        found, search_s = timed(lambda: index.search(queries, 1))
        index_mb = sum(f.stat().st_size for f in Path(cache).iterdir()) / 2**20
    exact_top1 = np.maximum(exact.real[:, 0], exact.fake[:, 0])
    found_top1 = np.maximum(found.real[:, 0], found.fake[:, 0])  # re-ranked: exact similarities of the rows found
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"ivf_bank_rows: {APPROX_BANK}")
    print(f"ivf_queries: {APPROX_QUERIES}")
    for key, value in SETTINGS.items():
        print(f"ivf_{key}: {value}")
    print(f"ivf_exact_search_s: {exact_s:.2f}")
    print(f"ivf_approximate_search_s: {search_s:.3f}")
    print(f"ivf_speedup_over_exact: {exact_s / search_s:.1f}")
    print(f"ivf_recall_at_1: {np.mean(found_top1 >= exact_top1 - TIE):.4f}")
    print(f"ivf_max_abs_diff_nearest_similarity: {np.abs(found_top1 - exact_top1).max():.2e}")
    print(f"ivf_build_s: {build_s:.1f}")
    print(f"ivf_reuse_s: {reuse_s:.1f}")
    print(f"ivf_index_mb: {index_mb:.0f}")
    print(f"ivf_bank_gb: {bank.nbytes / 2**30:.2f}")
    print(f"ivf_peak_rss_gb: {peak_gb:.2f}")
    print(f"cpu_cores: {os.cpu_count()}")
    print(f"load_average_1min_before: {load_before:.1f}")
    print(f"load_average_1min_after: {os.getloadavg()[0]:.1f}")


def main() -> None:
    chunk_size = load_params(Path(__file__).resolve().parents[1] / "params.yaml").nn.chunk_size
    smoke = ["--smoke"] if SMOKE else []
    if "--peak-memory" in sys.argv:
        peak_memory(chunk_size)
        return
    if "--approximate" in sys.argv:
        approximate()
        return
    speed(chunk_size)
    for part in ("--peak-memory", "--approximate"):
        sys.stdout.flush()
        subprocess.run([sys.executable, __file__, part, *smoke], check=True)


if __name__ == "__main__":
    main()

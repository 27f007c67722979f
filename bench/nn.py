"""Benchmark of the nn_eval search: exact top-1 cosine, 10,000 queries against a 100,000 x 768 bank;
approximate search (nn.backend faiss_ivf) against exact on a 1,000,000-row bank.

Prints the stage's search time, faiss IndexFlatIP's, a per-query Python loop's (100
queries, extrapolated) and the ratios (targets: at most 1.5x faiss, at least 10x faster
than the loop); then, in a fresh process, the peak resident memory of a search at
UnivFD's scale (720k x 768 bank, 34k queries) with the chunk size of params.yaml.
Every time includes normalising the features, from raw features to similarities.
Then, in a fresh process per code (flat, PQ): a 1,000,000 x 768 bank drawn from a seeded
Gaussian mixture (clustered, as real features are, not uniform noise), 1,000 queries from the same
mixture; the IVF index's build time, its search time against exact search (numpy backend), the
speed-up, recall@1 against exact search, the index's size and the process's peak resident memory
(the bank itself is 2.9 GB of it). Targets: recall@1 >= 0.99 at >= 5x speed-up.
Usage: nice -n 10 python bench/nn.py [--peak-memory | --approximate [flat|pq]]
"""
from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakedetect.detectors import neighbours  # noqa: E402
from fakedetect.params import load_params  # noqa: E402

DIM = 768
BANK, QUERIES, LOOP_QUERIES = 100_000, 10_000, 100
UNIVFD_BANK, UNIVFD_QUERIES = 720_000, 34_000


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


APPROX_BANK, APPROX_QUERIES, CLUSTERS = 1_000_000, 1_000, 2_000
PQ_BYTES = 96  # 8 dims per sub-quantizer byte


def mixture(rng: np.random.Generator, centres: np.ndarray, spreads: np.ndarray, n: int) -> np.ndarray:
    """n rows of a Gaussian mixture: a centre each, plus noise at that cluster's spread, in blocks."""
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        which = rng.integers(0, len(centres), stop - start)
        out[start:stop] = centres[which] + spreads[which, None] * rng.standard_normal((stop - start, DIM), dtype=np.float32)
    return out


def approximate(code: str) -> None:
    """Runs in its own process: its peak resident memory is this bank's and this index's."""
    nn = load_params(Path(__file__).resolve().parents[1] / "params.yaml").nn
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    spreads = rng.uniform(0.3, 1.2, CLUSTERS).astype(np.float32)  # some clusters tight, some overlapping
    bank, queries = mixture(rng, centres, spreads, APPROX_BANK), mixture(rng, centres, spreads, APPROX_QUERIES)
    labels = rng.integers(0, 2, APPROX_BANK)
    exact, exact_s = timed(lambda: neighbours.search(queries, bank, labels, k=1, chunk_size=nn.chunk_size))
    ivf = neighbours.Ivf(**(nn.ivf.model_dump() | {"pq_bytes": PQ_BYTES if code == "pq" else 0,
                                                    "recall_queries": APPROX_QUERIES}))
    index, build_s = timed(lambda: neighbours.IvfBank(bank, np.arange(APPROX_BANK), labels, ivf, nn.chunk_size))
    found, search_s = timed(lambda: index.search(queries, 1))
    report = index.recall(queries)
    index_mb = sum(i.ntotal * (i.code_size + 8) for i in index.indexes.values()) / 2**20
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    name = f"ivf_{code}"
    print(f"{name}_bank_rows: {APPROX_BANK}")
    print(f"{name}_queries: {APPROX_QUERIES}")
    print(f"{name}_nlist: {report['nlist']}")
    print(f"{name}_nprobe: {report['nprobe']}")
    print(f"{name}_pq_bytes: {ivf.pq_bytes}")
    print(f"{name}_exact_search_s: {exact_s:.2f}")
    print(f"{name}_build_s: {build_s:.1f}")
    print(f"{name}_search_s: {search_s:.3f}")
    print(f"{name}_speedup_over_exact: {exact_s / search_s:.1f}")
    print(f"{name}_recall_at_1: {report['recall_at_1']}")
    print(f"{name}_max_abs_diff_nearest_similarity: {np.abs(np.maximum(found.real, found.fake) - np.maximum(exact.real, exact.fake)).max():.2e}")
    print(f"{name}_index_mb: {index_mb:.0f}")
    print(f"{name}_bank_gb: {bank.nbytes / 2**30:.2f}")
    print(f"{name}_peak_rss_gb: {peak_gb:.2f}")


def main() -> None:
    chunk_size = load_params(Path(__file__).resolve().parents[1] / "params.yaml").nn.chunk_size
    if "--peak-memory" in sys.argv:
        peak_memory(chunk_size)
        return
    if "--approximate" in sys.argv:
        codes = sys.argv[sys.argv.index("--approximate") + 1:] or ["flat", "pq"]
        for code in codes:
            sys.stdout.flush()
            subprocess.run([sys.executable, __file__, "--approximate-one", code], check=True)
        return
    if "--approximate-one" in sys.argv:
        approximate(sys.argv[-1])
        return
    speed(chunk_size)
    sys.stdout.flush()
    subprocess.run([sys.executable, __file__, "--peak-memory"], check=True)
    sys.stdout.flush()
    subprocess.run([sys.executable, __file__, "--approximate"], check=True)


if __name__ == "__main__":
    main()

"""Benchmark of the indexed feature store: 1,000,000 synthetic entries x 768 dims.

Builds the store once under /tmp (shards of ADD_BATCH rows written through FeatureStore.add, in
float16 and in float32), then, each in a fresh process so that its peak resident memory is its
own: loading 10,000 wanted keys through the index, and the same with the full scan that every
load did before the index (open and re-hash every shard); the index's rebuild from the shards
(what an old store's first use, or a lost index, costs). Prints the time to add one batch and
the store's size on disk per dtype. Targets: the indexed load at least 20x faster than the full
scan and under 2 s on 2 cores.
Usage: nice -n 10 python bench/store.py [--keep]   (deletes the stores afterwards unless --keep)
`--smoke`: 2,000 entries x 16 dims in a temporary folder, one process per load (seconds; the figures mean nothing).
"""
from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakedetect.features import shard_files  # noqa: E402
from fakedetect.features.feature_store import FeatureStore  # noqa: E402

SMOKE = "--smoke" in sys.argv
ROOT = Path(tempfile.gettempdir()) / "fakedetect_bench_store"  # kept with --keep: the next run reuses it
if SMOKE:
    ENTRIES, DIM, ADD_BATCH, WANTED, REPEATS = 2_000, 16, 500, 100, 1
else:
    ENTRIES, DIM, ADD_BATCH, WANTED = 1_000_000, 768, 50_000, 10_000
    REPEATS = 3  # each load timed in 3 fresh processes: the median is printed
IDENTITY = {"model": "bench", "dim": DIM}


def key(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def build(dtype: str) -> None:
    store = FeatureStore(ROOT / dtype, IDENTITY, dtype)
    if store.index.counts()[0] == ENTRIES:
        print(f"# {dtype} store already built: no add_batch figure this time")
        return
    rng = np.random.default_rng(0)
    seconds = []
    for start in range(0, ENTRIES, ADD_BATCH):
        features = rng.standard_normal((ADD_BATCH, DIM), dtype=np.float32)
        keys = [key(i) for i in range(start, start + ADD_BATCH)]
        began = time.perf_counter()
        store.add(keys, features)
        seconds.append(time.perf_counter() - began)
    print(f"add_batch_rows: {ADD_BATCH}")
    print(f"add_batch_{dtype}_s: {np.median(seconds):.2f}")


def wanted() -> set[str]:
    return {key(int(i)) for i in np.random.default_rng(1).choice(ENTRIES, WANTED, replace=False)}


def full_scan(store: FeatureStore, keys: set[str]) -> dict[str, np.ndarray]:
    """The load before the index: open and verify every shard, keep the wanted rows."""
    found = {}
    for path in sorted(store.folder.glob(shard_files.SHARDS)):
        shard = shard_files.read(path, store.model_id, store.dtype)
        for k, vector in zip(shard[0].astype(str), shard[1]):
            if k in keys:
                found.setdefault(k, vector.astype(np.float32))
    return found


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (Linux: reset by exec, unlike ru_maxrss, which
    a child inherits from the parent that forked it), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def measure(what: str, dtype: str, root: Path) -> None:
    """One measurement, in this (fresh) process."""
    store = FeatureStore(root / dtype, IDENTITY, dtype)
    keys = wanted()
    before = peak_rss_mb()
    if what == "rebuild":
        store.index.path.unlink()
        began = time.perf_counter()
        store.sync()
        found = {}
    else:
        began = time.perf_counter()
        found = store.load(keys) if what == "indexed" else full_scan(store, keys)
    seconds = time.perf_counter() - began
    peak = peak_rss_mb()
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "added_mb": peak - before, "found": len(found)}))


def run(what: str, dtype: str, repeats: int = 1) -> dict:
    """The measurement with the median time of `repeats` fresh processes (the machine is shared)."""
    results = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, __file__, "--measure", what, dtype, str(ROOT)] + ["--smoke"] * SMOKE, check=True, capture_output=True,
                             text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return sorted(results, key=lambda r: r["seconds"])[len(results) // 2]


def main() -> None:
    global ROOT
    if "--measure" in sys.argv:
        measure(sys.argv[2], sys.argv[3], Path(sys.argv[4]))
        return
    if SMOKE:
        ROOT = Path(tempfile.mkdtemp(prefix="fakedetect_bench_store_smoke"))
    print(f"entries: {ENTRIES}")
    print(f"dims: {DIM}")
    print(f"wanted_keys: {WANTED}")
    for dtype in ("float16", "float32"):
        build(dtype)
        folder = FeatureStore(ROOT / dtype, IDENTITY, dtype).folder
        shards = sum(f.stat().st_size for f in folder.glob(shard_files.SHARDS))
        index = (folder / "index.sqlite").stat().st_size
        print(f"size_on_disk_{dtype}_gb: {(shards + index) / 1e9:.2f}")
        print(f"index_size_{dtype}_mb: {index / 1e6:.0f}")
        indexed, scan = run("indexed", dtype, REPEATS), run("full_scan", dtype, REPEATS)
        assert indexed["found"] == scan["found"] == WANTED
        print(f"load_indexed_{dtype}_s: {indexed['seconds']:.2f}")
        print(f"load_indexed_{dtype}_peak_rss_mb: {indexed['peak_mb']:.0f}")
        print(f"load_indexed_{dtype}_peak_rss_added_mb: {indexed['added_mb']:.0f}")
        print(f"load_full_scan_{dtype}_s: {scan['seconds']:.2f}")
        print(f"load_full_scan_{dtype}_peak_rss_mb: {scan['peak_mb']:.0f}")
        print(f"load_full_scan_{dtype}_peak_rss_added_mb: {scan['added_mb']:.0f}")
        print(f"full_scan_over_indexed_{dtype}_ratio: {scan['seconds'] / indexed['seconds']:.1f}")
        rebuilt = run("rebuild", dtype)
        print(f"index_rebuild_{dtype}_s: {rebuilt['seconds']:.1f}")
        print(f"load_avg_1min: {os.getloadavg()[0]:.1f}")  # the machine is shared: how busy it was
        sys.stdout.flush()
        if "--keep" not in sys.argv:
            shutil.rmtree(ROOT / dtype)
    if SMOKE:
        shutil.rmtree(ROOT)


if __name__ == "__main__":
    main()

"""Stage ingest: dataset roots named in params (or the built-in demo set) -> data/manifest.csv.

Every file found is read once: hashed, decoded, its size recorded, or skipped with a
reason. Counts per set and per skip reason go to metrics/ingest.json.
"""
import logging
import time

from fakedetect import atomic, demo, layouts, stage
from fakedetect.artifacts import INGEST_METRICS, MANIFEST
from fakedetect.images import Limits
from fakedetect.params import load_params

log = logging.getLogger("ingest")


def main() -> None:
    p = load_params().ingest
    n_workers = stage.worker_count(p.workers)
    if p.source == "demo":
        sources, key = demo.build(p.demo, n_workers), "ingest.demo"
    else:
        demo.reset_out_dir(p.demo, built=False)
        sources, key = p.datasets, "ingest.datasets"
    found = layouts.scan(sources, key)
    candidates = layouts.sample_test_sets(found.candidates, p.max_per_class, p.seed)
    limits = Limits(max_pixels=p.max_pixels, max_bytes=int(p.max_file_mb * 2**20),
                    min_side=p.min_side, keep_only_rgb=p.keep_only_rgb)
    start = time.perf_counter()
    manifest = layouts.build_manifest(candidates, limits, n_workers)
    seconds = time.perf_counter() - start
    atomic.write_csv(MANIFEST, manifest)
    summary = layouts.summarize(manifest, found)
    atomic.write_json(INGEST_METRICS, {"source": p.source, **summary})
    log.info("%d files (%d ok, %d skipped) in %.1f s: %.0f files/s with %d workers",
             summary["rows"], summary["ok"], summary["skipped"], seconds, len(manifest) / max(seconds, 1e-9), n_workers)


if __name__ == "__main__":
    stage.run(main)

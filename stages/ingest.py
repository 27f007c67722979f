"""Stage ingest: dataset roots named in params (or the built-in demo set) -> data/manifest.csv and
data/file_facts.csv.

Every file found is read once: hashed, its header's facts read (format, size, JPEG quality, ...),
decoded, its size recorded, or skipped with a reason. Every image folder below the roots is either
read or named with the reason it was not. The test sets that the benchmark card lists are checked
against its counts (a warning names each that differs). The headline counts go to
metrics/ingest.json, the details (per set and class: counts, fingerprint, file facts; per skip
reason; the folders read and not read; the card's check) to reports/ingest.json.
"""
import logging
import time

from fakedetect import atomic, stage
from fakedetect.data import demo, fingerprints, layouts, manifests, reading
from fakedetect.artifacts import FILE_FACTS, INGEST_METRICS, INGEST_REPORT, MANIFEST
from fakedetect.data.images import Limits
from fakedetect.params import load_params

SHOWN_FOLDERS = 20  # folders not read that the log names one by one; the report lists all
log = logging.getLogger("ingest")


def log_folders(found: layouts.Scan) -> None:
    """Say which image folders were read and which were not, and why."""
    log.info("read the images of %d label folders", len(found.used_folders))
    for level, folders in ((logging.INFO, found.unselected_folders), (logging.WARNING, found.ignored_folders)):
        for folder, why in list(folders.items())[:SHOWN_FOLDERS]:
            log.log(level, "not read: %s (%s)", folder, why)
        if len(folders) > SHOWN_FOLDERS:
            log.log(level, "... and %d more folders not read, listed in %s", len(folders) - SHOWN_FOLDERS, INGEST_REPORT)


def main() -> None:
    params = load_params()
    p, source = params.ingest, params.image_source
    if source is None:
        raise stage.UserError("images is []: the features are imported, there are no images to ingest")
    n_workers = stage.worker_count(p.workers)
    if source == "demo":
        sources, key = demo.build(p.demo, n_workers), "ingest.demo"
    else:
        demo.reset_out_dir(p.demo, built=False)
        sources, key = p.datasets, "ingest.datasets"
    found = layouts.scan(sources, key)
    log_folders(found)
    cards = fingerprints.check_cards(fingerprints.found_counts(found.candidates))
    candidates = manifests.sample_test_sets(found.candidates, p.max_per_class, p.seed)
    limits = Limits(max_pixels=p.max_pixels, max_bytes=int(p.max_file_mb * 2**20),
                    min_side=p.min_side, keep_only_rgb=p.keep_only_rgb)
    start = time.perf_counter()
    manifest, facts = reading.build_manifest(candidates, limits, n_workers)
    seconds = time.perf_counter() - start
    atomic.write_csv(MANIFEST, manifest)
    atomic.write_csv(FILE_FACTS, facts)
    report = {"source": source, **reading.summarize(manifest, found, facts, cards)}
    atomic.write_json(INGEST_REPORT, report)
    atomic.write_json(INGEST_METRICS, {"source": source, **reading.headline(report)})
    files, rows = report["files"], report["rows"]
    log.info("%d files read (%d ok, %d skipped) in %.1f s: %.0f files/s with %d workers", files["read"], files["ok"],
             files["skipped"], seconds, files["read"] / max(seconds, 1e-9), n_workers)
    log.info("%d manifest rows (%d ok, %d skipped): a file in several test sets is one row per set",
             rows["total"], rows["ok"], rows["skipped"])


if __name__ == "__main__":
    stage.run(main)

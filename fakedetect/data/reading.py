"""What ingest does with each candidate file, once: read and hash it, read its header's facts, decode
it, and record its size or the reason it was skipped; and the report of everything it read (counts,
fingerprints and file facts per set, skips, folders). Only ingest reads files this way; the other
stages read the manifest (fakedetect.data.manifests)."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import pandas as pd
from tqdm import tqdm

from fakedetect.data import file_facts, fingerprints, images
from fakedetect.data.images import BadImage, Limits
from fakedetect.data.layouts import Candidate, Scan, display_path
from fakedetect.data.manifests import COLUMNS, sort_key


def _inspect(path: str, limits: Limits) -> tuple[tuple, dict]:
    """(the manifest's fields of one file, its file facts: header facts read before the pixels are
    decoded, so that a file whose pixels are broken still has them)."""
    facts = {"path": display_path(path), "sha256": "", "reason": ""}
    try:
        data = images.read_file(path, limits.max_bytes)
        facts["sha256"] = images.sha256_of(data)
        facts |= file_facts.header_facts(data)
        rgb, mode = images.decode(data, limits)
    except BadImage as exc:
        if "format" not in facts:  # the header itself could not be read
            facts["reason"] = exc.reason
        return ("", 0, 0, "", "skipped", exc.reason), facts
    height, width = rgb.shape[:2]
    return (facts["sha256"], width, height, mode, "ok", ""), facts


def build_manifest(candidates: list[Candidate], limits: Limits, workers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every candidate once (in parallel): hash, read its header's facts, decode, and record size
    or skip reason. Returns the manifest and the file facts (one row per distinct file, by path)."""
    paths = sorted({c.path for c in candidates})
    with ProcessPoolExecutor(workers) as pool:
        results = dict(zip(paths, tqdm(pool.map(_inspect, paths, [limits] * len(paths), chunksize=16),
                                       total=len(paths), desc="ingest", unit="file", mininterval=2)))
    facts = file_facts.as_table([results[p][1] for p in paths])
    rows = []
    for c in candidates:
        sha256, width, height, mode, status, reason = results[c.path][0]
        rows.append(dict(path=display_path(c.path), sha256=sha256, split=c.split, test_set=c.test_set,
                         label=c.label, generator=c.generator, family=c.family, category=c.category,
                         width=width, height=height, mode=mode, status=status, reason=reason))
    rows.sort(key=sort_key)
    frame = pd.DataFrame(rows, columns=COLUMNS[1:])
    frame.insert(0, "id", range(len(frame)))
    return frame, facts


def summarize(manifest: pd.DataFrame, scan_result: Scan, facts: pd.DataFrame, cards: dict) -> dict:
    """Everything ingest counted, for reports/ingest.json. Files and rows are counted apart: a real
    photograph shared by several test sets (UnivFD's real pools) is one file but one row per set.
    Each set's fingerprint and file facts (formats, sizes, JPEG qualities per class), and the
    benchmark card's check of the sets it lists (`cards`: fingerprints.check_cards), are reported too."""
    ok = manifest[manifest.status == "ok"]
    skipped = manifest[manifest.status == "skipped"]
    files = manifest.drop_duplicates("path")
    sets = {}
    for (split, test_set), group in ok.groupby(["split", "test_set"], sort=True):
        sets[fingerprints.set_name(split, test_set)] = {"real": int((group.label == 0).sum()), "fake": int((group.label == 1).sum())}
    files_ok, files_skipped = files[files.status == "ok"], files[files.status == "skipped"]
    return {
        "files": {"read": len(files), "ok": len(files_ok), "skipped": len(files_skipped)},
        "rows": {"total": len(manifest), "ok": len(ok), "skipped": len(skipped)},
        "sets": sets,
        "fingerprints": fingerprints.of_sets(ok),
        "file_facts": file_facts.summarize_sets(ok, facts),
        "benchmark_cards": cards,
        "skipped_files_by_reason": {k: int(v) for k, v in sorted(files_skipped.reason.value_counts().items())},
        "converted_to_rgb_from": {k: int(v) for k, v in sorted(files_ok[files_ok["mode"] != "RGB"]["mode"].value_counts().items())},
        "ignored_non_image_files": scan_result.ignored_files,
        "empty_folders": sorted(display_path(p) for p in scan_result.empty_folders),
        "image_folders": {
            "read": sorted(display_path(p) for p in scan_result.used_folders),
            "left_out_by_params": dict(sorted(scan_result.unselected_folders.items())),
            "ignored": dict(sorted(scan_result.ignored_folders.items())),
        },
    }


def headline(report: dict) -> dict:
    """The figures of metrics/ingest.json (what `dvc metrics show` prints, every metrics file in one table):
    the files, the number of test sets, and how many image folders were not read; the rest (the rows
    among them) stays in the report."""
    return {"files": report["files"],
            "test_sets": sum(name.startswith("test/") for name in report["sets"]),
            "ignored_image_folders": len(report["image_folders"]["ignored"])}

"""`fakedetect datasets ROOT...`: the fingerprints and file facts of dataset folders, without running the
pipeline (docs/shortcuts.md "Fingerprints and benchmark cards").

The folders are read as ingest reads them (fakedetect.data.layouts), every file hashed and its header
read, no pixel decoded: a file whose header is fine but whose pixels are broken counts here and is a
recorded skip at ingest, so ingest's fingerprint may then differ.
"""
from __future__ import annotations

import json
import sys
from collections import Counter

import pandas as pd

from fakedetect.data import file_facts, fingerprints, layouts
from fakedetect.params import DatasetSource
from fakedetect.stage import UserError, worker_count


def describe(roots: list[str], layout: str, split: str, workers: int) -> dict:
    """Per set found below the roots: counts per class, fingerprint, file facts per class, and the files
    whose header could not be read; the benchmark card's check of the sets it lists."""
    found = layouts.scan([DatasetSource(layout=layout, root=root, split=split) for root in roots], "datasets")
    paths = sorted({c.path for c in found.candidates})
    facts = file_facts.scan(paths, workers).drop(columns=["path"]).set_index(pd.Index(paths))
    candidates = pd.DataFrame([{"path": c.path, "split": c.split, "test_set": c.test_set, "label": c.label}
                               for c in found.candidates], columns=["path", "split", "test_set", "label"])
    rows = candidates.join(facts, on="path")
    usable = rows[rows.reason == ""]
    summaries = file_facts.summarize_sets(usable[["path", "split", "test_set", "label"]], facts.reset_index(names="path"))
    sets = {name: {**entry, "file_facts": summaries[name]} for name, entry in fingerprints.of_sets(usable).items()}
    for (split_name, test_set), group in rows[rows.reason != ""].groupby(["split", "test_set"]):
        sets.setdefault(fingerprints.set_name(split_name, test_set), {})["unreadable"] = dict(Counter(group.reason))
    return {"files": len(paths), "sets": sets,
            "benchmark_cards": fingerprints.check_cards(fingerprints.found_counts(found.candidates))}


def render(report: dict) -> str:
    """The report for people: one block per set."""
    lines = [f"{report['files']} files"]
    for name, entry in report["sets"].items():
        lines.append(f"{name}: {entry.get('real', 0)} real, {entry.get('fake', 0)} fake, "
                     f"fingerprint {entry.get('sha256', '-')}")
        for cls, summary in entry.get("file_facts", {}).items():
            qualities = ", ".join(f"{q} x{n}" for q, n in summary["jpeg_qualities"].items())
            lines.append(f"  {cls}: {summary['in_words']}" + (f"; JPEG qualities {qualities}" if qualities else ""))
        if entry.get("unreadable"):
            lines.append("  unreadable headers: " + ", ".join(f"{n} {why}" for why, n in entry["unreadable"].items()))
        card = report["benchmark_cards"].get(name.removeprefix("test/"))
        if card:
            verdict = {True: "matches", False: "DIFFERS from", None: "is listed (counts unknown) in"}[card["agrees"]]
            lines.append(f"  {verdict} the card of {card['benchmark']}: expected {card['expected']}, "
                         f"found {card['found']}")
    return "\n".join(lines)


def command(args) -> int:
    """`fakedetect datasets`: the report as text or JSON; 2 when a root cannot be read as its layout."""
    try:
        report = describe(args.roots, args.layout, args.split, worker_count(args.workers))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else render(report))
    return 0

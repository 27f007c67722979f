"""Test sets anyone can verify (docs/shortcuts.md "Fingerprints and benchmark cards"): each set's counts
per class and a fingerprint, the SHA-256 over its sorted (file SHA-256, label) pairs, so that two labs
can tell in one line whether they scored the same files; and the committed card of the public
benchmarks' published counts, checked against the folders found.

The fingerprint depends on the files' bytes and labels only: not on paths, names, order or the
machine. Renaming or moving files keeps it; one changed, added or removed file changes it.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import yaml

CARDS_FILE = Path(__file__).with_name("benchmark_cards.yaml")
CLASSES = {0: "real", 1: "fake"}
log = logging.getLogger("ingest")


def fingerprint(sha256s, labels) -> str:
    """SHA-256 over the sorted lines 'file sha256<TAB>label' (label 0 real, 1 fake), each ending in a newline."""
    lines = sorted(f"{sha}\t{int(label)}\n" for sha, label in zip(sha256s, labels))
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def set_name(split: str, test_set: str) -> str:
    """A set's name in the reports: the split, or test/<set>."""
    return f"{split}/{test_set}" if test_set else split


def of_sets(rows) -> dict:
    """Per split and test set of the usable rows (columns split, test_set, label, sha256): its counts
    per class and fingerprint."""
    out = {}
    for (split, test_set), group in rows.groupby(["split", "test_set"], sort=True):
        out[set_name(split, test_set)] = {
            **{name: int((group.label == label).sum()) for label, name in CLASSES.items()},
            "sha256": fingerprint(group.sha256, group.label)}
    return out


def of_rows(rows) -> dict | str:
    """The fingerprints of a feature folder's sets (its rows name each original file's SHA-256), or why none."""
    if "sha256" not in rows or rows.sha256.isna().any() or (rows.sha256.astype(str) == "").any():
        return "the features name no original files (imported features): no fingerprints"
    return of_sets(rows)


def load_cards(path: str | Path = CARDS_FILE) -> dict[str, dict]:
    """Set name -> {benchmark, title, source, real, fake} of every set the card lists."""
    document = yaml.safe_load(Path(path).read_text())
    cards = {}
    for key, benchmark in document["benchmarks"].items():
        for name, counts in benchmark["sets"].items():
            cards[name] = {"benchmark": key, "title": benchmark["title"], "source": benchmark["source"],
                           "real": counts.get("real"), "fake": counts.get("fake")}
    return cards


def check_cards(found: dict[str, dict[str, int]], cards: dict[str, dict] | None = None) -> dict:
    """For each test set the card lists (by name): the expected counts per class, the found ones, and
    whether they agree (null where the card does not know a count). A mismatch is logged as a warning
    naming the set, the expected and the found counts; a set the card does not list is left out."""
    cards = load_cards() if cards is None else cards
    checked = {}
    for name in sorted(set(found) & set(cards)):
        card = cards[name]
        expected = {cls: card[cls] for cls in CLASSES.values()}
        known = {cls: n for cls, n in expected.items() if n is not None}
        agrees = all(found[name].get(cls, 0) == n for cls, n in known.items()) if known else None
        checked[name] = {"benchmark": card["benchmark"], "expected": expected, "found": found[name],
                         "agrees": agrees, "source": card["source"]}
        if agrees is False:
            log.warning("test set %s differs from the card of %s: expected %s, found %s (real / fake files)",
                        name, card["title"], _pair(expected), _pair(found[name]))
    return checked


def _pair(counts: dict) -> str:
    return " / ".join("?" if counts.get(cls) is None else str(counts.get(cls)) for cls in CLASSES.values())


def found_counts(candidates) -> dict[str, dict[str, int]]:
    """Test set -> files found per class, before any sampling (what a card's counts describe)."""
    counts: dict[str, dict[str, int]] = {}
    for c in candidates:
        if c.split == "test":
            entry = counts.setdefault(c.test_set, {"real": 0, "fake": 0})
            entry[CLASSES[c.label]] += 1
    return counts

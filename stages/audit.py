"""Stage audit: how well the file facts alone (format, size, JPEG quality, ...; never a pixel) tell real
from fake in each split and test set -> reports/audit.json (per set: shortcut_auc, transfer_auc, the
flag, the separating facts in words), metrics/audit.json (the highest shortcut AUC and the number of
flagged sets: shortcut_auc, flagged) and plots/audit.csv (docs/shortcuts.md "The shortcut audit").

A stage of its own after ingest, not part of it: its params (threshold, folds, facts) change without
reading and hashing every file again, and ingest stays the stage that reads files.
"""
import logging

from fakedetect import atomic, stage
from fakedetect.artifacts import AUDIT_METRICS, AUDIT_PLOT, AUDIT_REPORT, FILE_FACTS, MANIFEST
from fakedetect.data import file_facts, manifests
from fakedetect.evaluation import shortcuts
from fakedetect.params import load_params

log = logging.getLogger("audit")


def main() -> None:
    params = load_params()
    p = params.audit
    manifest = manifests.read_manifest(MANIFEST)
    facts = file_facts.read_table(FILE_FACTS).drop(columns=["sha256", "reason"])
    rows = manifest[manifest.status == "ok"][["path", "split", "test_set", "label"]].merge(facts, on="path")
    rows = manifests.sample_rows(rows, p.max_per_class, p.seed).reset_index(drop=True)
    found = shortcuts.audit(rows, list(p.facts), p.threshold, p.folds, p.seed)
    atomic.write_json(AUDIT_REPORT, {"facts": list(p.facts), "threshold": p.threshold, "folds": p.folds,
                                     "max_per_class": p.max_per_class,
                                     "classifier": f"scikit-learn RandomForestClassifier({shortcuts.TREES} trees)",
                                     **found})
    atomic.write_json(AUDIT_METRICS, found["headline"])
    atomic.write_csv(AUDIT_PLOT, shortcuts.table(found["sets"]))
    for name, entry in found["sets"].items():
        transfer = f", transfer AUC {entry['transfer_auc']}" if entry.get("transfer_auc") is not None else ""
        if entry["flagged"]:
            log.warning("%s: FLAGGED, shortcut AUC %s%s: the file alone separates it: %s", name,
                        entry["shortcut_auc"], transfer, entry["in_words"])
        else:
            log.info("%s: shortcut AUC %s%s", name, entry["shortcut_auc"] if entry["shortcut_auc"] is not None
                     else f"none ({entry['why_no_auc']})", transfer)
    headline = found["headline"]
    log.info("%d of %d sets flagged (shortcut AUC >= %s); highest shortcut AUC %s", headline["flagged"],
             len(found["sets"]), p.threshold, headline["shortcut_auc"])


if __name__ == "__main__":
    stage.run(main)

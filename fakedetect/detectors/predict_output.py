"""How `fakedetect predict` prints its rows (each Prediction.row(): JSON lines, CSV or a table) and its
closing lines on stderr (docs/predict.md)."""
from __future__ import annotations

import csv
import json
import sys


def table(rows: list[dict]) -> str:
    def cell(value):
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "fake" if value else "real"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    header = ["file", "P(fake)", "verdict", "threshold", "at 0.5", "family", "P(family)"]
    body = [[r["path"], cell(r["p_fake"]), cell(r["fake"]) + ("*" if r.get("verdict_rests_on_file") else ""),
             cell(r["threshold"]), cell(r["fake_at_0_5"]), cell(r["family"]), cell(r["p_family"])]
            if r["status"] == "ok" else [r["path"], "-", f"unreadable: {r['reason']}", "", "", "", ""] for r in rows]
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in [header] + body)


def write(rows: list[dict], form: str, out=sys.stdout) -> None:
    """The rows as JSON lines, CSV with a header row, or a table."""
    if form == "json":
        for r in rows:
            print(json.dumps(r, sort_keys=True), file=out)
    elif form == "csv":
        columns = list(dict.fromkeys(column for r in rows for column in r))  # an unreadable row has no extras
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        print(table(rows), file=out)


def closing(rows: list[dict], seconds: float) -> list[str]:
    """The lines for stderr: how many were scored, the verdicts that rest on the file, the unreadable inputs."""
    unreadable = [r for r in rows if r["status"] != "ok"]
    lines = [f"scored {len(rows) - len(unreadable)} of {len(rows)} images in {seconds:.1f} s "
             f"({len(rows) / seconds:.1f} images/s)"]
    flipped = [r for r in rows if r.get("verdict_rests_on_file")]
    if flipped:
        lines.append(f"{len(flipped)} verdicts (* in the table) change when the image is {flipped[0]['aligned_as']}: "
                     "they may rest on the file, not the pixels (docs/shortcuts.md):")
        lines += [f"  {r['path']}" for r in flipped]
    if unreadable:
        lines.append(f"{len(unreadable)} of {len(rows)} inputs could not be read:")
        lines += [f"  {r['path']}: {r['reason']}" for r in unreadable]
    return lines

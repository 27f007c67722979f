"""The README and docs/ stay honest: every relative link resolves (file and heading), every section
pointer that code and params comments write (README "Heading", or a docs page's path followed by
"Heading") names a heading that exists, and the README stays a short front page.

In-process and offline: reads files only."""
import re
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
README = PROJECT / "README.md"
MAX_README_LINES = 250

pytestmark = pytest.mark.fast

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# README "Heading", or docs/page.md "Heading"; a comment may wrap between the two (README\n# "Heading").
POINTER = re.compile(r"\b(README|docs/[\w.-]+\.md)[ \t]*(?:\n[ \t]*#)?[ \t]*\"([^\"\n]+)\"")
POINTER_FILES = ["*.py", "*.yaml", "Makefile", "requirements.txt", ".ci/run"]


def markdown_files() -> list[Path]:
    return [README, *sorted((PROJECT / "docs").glob("*.md"))]


def outside_code(text: str) -> list[str]:
    """The lines of a Markdown text that are not inside a fenced code block."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def headings(path: Path) -> list[str]:
    """Heading texts (after the #'s, stripped) of a Markdown file, code blocks left out."""
    return [m.group(1).strip() for line in outside_code(path.read_text(encoding="utf-8"))
            if (m := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower-case, punctuation dropped (hyphens and underscores
    kept), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in headings(path):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def test_slug_is_githubs():
    assert slug("Scoring your own images: `fakedetect predict`") == "scoring-your-own-images-fakedetect-predict"
    assert slug("nn_eval, linear_train, linear_eval") == "nn_eval-linear_train-linear_eval"
    assert slug("Training logs (DVCLive)") == "training-logs-dvclive"
    assert slug("bench/extract.py") == "benchextractpy"


def test_headings_skip_code_blocks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n```bash\n# a shell comment\n```\n## Part two\n")
    assert headings(page) == ["Title", "Part two"]


def test_relative_links_resolve():
    broken = []
    for page in markdown_files():
        for line in outside_code(page.read_text(encoding="utf-8")):
            for target in LINK.findall(line):
                if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # https:, mailto:, ...
                    continue
                path_part, _, anchor = target.partition("#")
                resolved = (page.parent / path_part).resolve() if path_part else page
                where = f"{page.relative_to(PROJECT)}: ({target})"
                if not resolved.exists():
                    broken.append(f"{where}: no file {path_part}")
                elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                    broken.append(f"{where}: {resolved.name} has no heading with anchor #{anchor}")
    assert broken == []


def pointer_sources() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z", "--", *POINTER_FILES], cwd=PROJECT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    this = Path(__file__).resolve()
    return [PROJECT / name for name in listed
            if name and (PROJECT / name).is_file() and (PROJECT / name).resolve() != this]


def test_section_pointers_name_existing_headings():
    sources = pointer_sources()
    assert sources, "git ls-files found no source files"
    wrong, found = [], 0
    for source in sources:
        text = source.read_text(encoding="utf-8", errors="replace")
        for m in POINTER.finditer(text):
            found += 1
            target, heading = m.group(1), m.group(2)
            line = text.count("\n", 0, m.start()) + 1
            where = f"{source.relative_to(PROJECT)}:{line}: {target} \"{heading}\""
            page = PROJECT / ("README.md" if target == "README" else target)
            if not page.is_file():
                wrong.append(f"{where}: no file {page.relative_to(PROJECT)}")
            elif heading not in headings(page):
                wrong.append(f"{where}: {page.relative_to(PROJECT)} has no heading \"{heading}\"")
    assert found, "no section pointer found: is the pattern still the one the code writes?"
    assert wrong == []


def test_pointer_pattern():
    text = 'x  # see README "Quick start"\ny  # (README\n# "Development") and docs/pipeline.md "ingest"'
    assert [m.groups() for m in POINTER.finditer(text)] == [
        ("README", "Quick start"), ("README", "Development"), ("docs/pipeline.md", "ingest")]
    assert not POINTER.search('(PROJECT / "README.md").read_text()')


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail to docs/"

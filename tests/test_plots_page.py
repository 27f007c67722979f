"""The plots page renders offline: plain `dvc plots show` with the committed template, seen in headless Chromium.

The browser tests skip, saying why, where no Chromium is installed; `.ci/run` installs Debian's.
The browser gets no network: every host name fails to resolve, so a page that needs a CDN stays blank.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from dvc_render.base import Renderer
from dvc_render.html import PAGE_HTML

from helpers import PROJECT, write_image

DVC = [sys.executable, "-m", "dvc"]
TEMPLATE = PROJECT / "plots_template" / "offline.html"
LIBRARIES = {"vega": "5", "vega-lite": "5", "vega-embed": "6"}  # npm package: major version
LIBRARY_BLOCK = re.compile(r'<script data-library="([^"]+)" data-version="([^"]+)" data-file="[^"]+" '
                           r'data-sha256="([0-9a-f]{64})">\n(.*?)\n</script>', re.DOTALL)
CHROMIUM = os.environ.get("CHROMIUM") or next(
    filter(None, map(shutil.which, ["chromium", "chromium-browser", "google-chrome"])), None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND",
                  "--hide-scrollbars", "--virtual-time-budget=15000"]
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on PATH (set CHROMIUM=/path/to/it; .ci/run installs Debian's chromium)")


def run(cmd: list[str], cwd: Path) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def chromium(page: Path, profile: Path, *args: str) -> str:
    """Open `page` in headless Chromium with a new empty profile; return its stdout (the DOM with --dump-dom)."""
    result = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


class RenderedPage(HTMLParser):
    """What a dumped DOM shows of each plot div: rendered by vega-embed, drawn marks, images; and the page's errors."""

    def __init__(self, dom: str, plot_ids: set[str]):
        super().__init__()
        self.plot_ids = plot_ids
        self.rendered: set[str] = set()  # data-vega-rendered, set by the template once the view has run
        self.marks: Counter[str] = Counter()  # vega's <canvas class="marks"> or <svg class="marks">, not empty
        self.images: Counter[str] = Counter()
        self.errors = ""  # the template's <pre id="page-errors">
        self._divs: list[str | None] = []
        self._in_errors = False
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._in_errors = attrs.get("id") == "page-errors"
        if tag == "div":
            self._divs.append(attrs.get("id"))
            if attrs.get("id") in self.plot_ids and attrs.get("data-vega-rendered") == "true":
                self.rendered.add(attrs["id"])
        plot = next((div for div in reversed(self._divs) if div in self.plot_ids), None)
        if plot is None:
            return
        drawn = tag == "svg" or int(attrs.get("width") or 0) * int(attrs.get("height") or 0) > 0
        if tag in ("canvas", "svg") and "marks" in (attrs.get("class") or "").split() and drawn:
            self.marks[plot] += 1
        if tag == "img":
            self.images[plot] += 1

    def handle_endtag(self, tag):
        self._in_errors = False
        if tag == "div":
            self._divs.pop()

    def handle_data(self, data):
        if self._in_errors:
            self.errors += data


def declared_plots(project: Path) -> dict[str, str]:
    """Every plot DVC finds declared in `project`, by the id of its div on the page: 'vega' or 'image'."""
    shown = json.loads(run(DVC + ["plots", "show", "--json"], project))
    assert not shown.get("errors"), shown["errors"]
    return {Renderer.remove_special_chars(name): renderers[0]["type"] for name, renderers in shown["data"].items()}


@pytest.fixture(scope="module")
def plots_project(tmp_path_factory) -> Path:
    """A DVC project with this repository's .dvc/config and template, declaring three vega plots and an image."""
    folder = tmp_path_factory.mktemp("plots_project")
    run(["git", "init", "-q"], folder)
    run(DVC + ["init", "-q"], folder)
    shutil.copy2(PROJECT / ".dvc" / "config", folder / ".dvc" / "config")
    shutil.copytree(PROJECT / "plots_template", folder / "plots_template")
    plots = folder / "plots"
    plots.mkdir()
    (plots / "train_curve.csv").write_text("epoch,loss\n" + "".join(f"{e},{1 / (e + 1):.4f}\n" for e in range(20)))
    for name, power in [("roc_seen", 0.2), ("roc_unseen", 0.7)]:
        (plots / f"{name}.csv").write_text("fpr,tpr\n" + "".join(f"{f / 10},{(f / 10) ** power:.4f}\n" for f in range(11)))
    pairs = [(0, 0)] * 5 + [(0, 1)] * 2 + [(1, 1)] * 6 + [(1, 0)]
    (plots / "confusion.json").write_text(json.dumps([{"actual": a, "predicted": p} for a, p in pairs]))
    write_image(plots / "preprocess.png", size=(320, 160))
    dvc_yaml = {"plots": [
        {"plots/train_curve.csv": {"x": "epoch", "y": "loss", "title": "Training loss"}},
        {"roc": {"template": "simple", "x": "fpr", "y": {"plots/roc_seen.csv": "tpr", "plots/roc_unseen.csv": "tpr"}}},
        {"plots/confusion.json": {"template": "confusion", "x": "predicted", "y": "actual"}},
        "plots/preprocess.png",
    ]}
    (folder / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    return folder


def test_template_inlines_the_three_libraries_unmodified():
    page = TEMPLATE.read_text(encoding="utf8")
    blocks = LIBRARY_BLOCK.findall(page)
    assert {name: version.split(".")[0] for name, version, _, _ in blocks} == LIBRARIES
    for name, version, sha256, code in blocks:
        assert hashlib.sha256(code.encode("utf8")).hexdigest() == sha256, f"{name}@{version} is not npm's file"
        assert (TEMPLATE.parent / f"LICENSE-{name}.txt").read_text().startswith("Copyright (c) 2015")
    own_html = LIBRARY_BLOCK.sub("", page)
    assert not re.search(r"<script[^>]* src=|<link", own_html)  # nothing loaded from elsewhere
    # DVC fills these by text replacement: the CDN tags it would put at {scripts} have nowhere to go.
    assert own_html.count("{plot_divs}") == 1 and "{scripts}" not in page
    assert TEMPLATE.stat().st_size < 2_000_000


@needs_chromium
def test_every_declared_plot_renders_offline(plots_project, tmp_path, capsys):
    declared = declared_plots(plots_project)
    assert declared == {"plots_train_curve_csv": "vega", "roc": "vega", "plots_confusion_json": "vega",
                        "plots_preprocess_png": "image"}
    run(DVC + ["plots", "show"], plots_project)  # no options: .dvc/config names the template
    page = plots_project / "dvc_plots" / "index.html"
    assert 'data-library="vega-embed"' in page.read_text(encoding="utf8")

    shown = RenderedPage(chromium(page, tmp_path / "profile-dom", "--dump-dom"), set(declared))
    vega = {plot for plot, kind in declared.items() if kind == "vega"}
    images = set(declared) - vega
    assert shown.errors == ""  # no script error, no failed vega-embed, no image that failed to load
    assert shown.rendered == vega
    assert {plot for plot in vega if shown.marks[plot] >= 1} == vega
    assert {plot for plot in images if shown.images[plot] >= 1} == images

    screenshot = tmp_path / "plots_page.png"
    chromium(page, tmp_path / "profile-shot", f"--screenshot={screenshot}", "--window-size=1280,1200")
    assert screenshot.stat().st_size > 20_000
    with capsys.disabled():
        print(f"\nplots page screenshot: {screenshot}")


@needs_chromium
def test_page_reports_a_broken_plot_and_a_missing_image(tmp_path):
    broken = ('<div id="broken_plot"><script>vegaEmbed("#broken_plot", {"mark": "no_such_mark", '
              '"data": {"values": [{"x": 1}]}});</script></div><div id="lost_image"><img src="missing.png"></div>')
    page = tmp_path / "index.html"
    page.write_text(TEMPLATE.read_text(encoding="utf8").replace("{refresh_tag}", "").replace("{plot_divs}", broken),
                    encoding="utf8")
    shown = RenderedPage(chromium(page, tmp_path / "profile", "--dump-dom"), {"broken_plot", "lost_image"})
    assert shown.rendered == set() and not shown.marks
    assert "broken_plot: " in shown.errors  # vega-lite refused the spec; the plot is named
    assert "could not load" in shown.errors and "missing.png" in shown.errors


@needs_chromium
def test_dvc_default_page_stays_blank_without_network(plots_project, tmp_path):
    """The control: DVC's own page, which loads the libraries from a CDN, draws nothing in this browser."""
    (tmp_path / "cdn.html").write_text(PAGE_HTML)
    run(DVC + ["plots", "show", "--html-template", str(tmp_path / "cdn.html"), "-o", str(tmp_path / "cdn")],
        plots_project)
    page = tmp_path / "cdn" / "index.html"
    assert "https://cdn.jsdelivr.net/npm/vega@5" in page.read_text(encoding="utf8")
    shown = RenderedPage(chromium(page, tmp_path / "profile", "--dump-dom"), set(declared_plots(plots_project)))
    assert not shown.marks


@needs_chromium
def test_page_lists_a_declared_plot_whose_files_dvc_could_not_load(plots_project, tmp_path):
    """A plot declared in dvc.yaml whose file is absent (a params choice turned off the stage part
    that writes it) gets an empty spec from DVC, which draws nothing: the error list names it."""
    project = tmp_path / "project"
    shutil.copytree(plots_project, project, ignore=shutil.ignore_patterns("dvc_plots"))
    dvc_yaml = yaml.safe_load((project / "dvc.yaml").read_text())
    dvc_yaml["plots"].append({"level 3 confusion": {"template": "confusion", "x": "actual",
                                                    "y": {"plots/level3_confusion.csv": "predicted"}}})
    (project / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    run(DVC + ["plots", "show"], project)
    page = project / "dvc_plots" / "index.html"
    missing = Renderer.remove_special_chars("level 3 confusion")
    vega = {"plots_train_curve_csv", "roc", "plots_confusion_json"}
    assert f"vegaEmbed('#{missing}'" in page.read_text(encoding="utf8")  # DVC gives it an empty spec
    shown = RenderedPage(chromium(page, tmp_path / "profile", "--dump-dom"), vega | {missing})
    assert shown.errors.splitlines() == [f"{missing}: no data: DVC could not load this plot's files "
                                         "(see the warnings of dvc plots show)"]
    assert shown.rendered == vega  # the others still render, and are not reported

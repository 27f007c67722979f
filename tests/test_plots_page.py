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
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from dvc_render.base import Renderer
from dvc_render.html import PAGE_HTML
from matplotlib.colors import to_hex

from fakedetect.evaluation.plots import CLASS_COLOURS, save_curves
from helpers import PROJECT, private_copy, write_image

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


def declared_plots(project: Path, *targets: str) -> dict[str, str]:
    """Every plot DVC finds declared in `project` (or among `targets`), by the id of its div on the page:
    'vega' or 'image'."""
    shown = json.loads(run(DVC + ["plots", "show", "--json", *targets], project))
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


@pytest.mark.fast
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
def test_the_pipelines_training_curves_render_offline(trained_project, tmp_path):
    """The training curves drawn from DVCLive's files (linear_train, resnet_attribution's levels),
    on the page `dvc plots show` makes for a trained demo."""
    project = private_copy(trained_project, tmp_path / "project")
    declared = declared_plots(project)
    curves = {Renderer.remove_special_chars(f"dvclive/{stage}/plots/metrics/{part}/{figure}.tsv")
              for stage, parts in (("linear_train", ["train", "eval"]),
                                   ("resnet_attribution", [f"level{n}/{split}" for n in (1, 2, 3) for split in ("train", "eval")]))
              for part in parts for figure in ("loss", "accuracy")}
    assert curves <= {plot for plot, kind in declared.items() if kind == "vega"}
    run(DVC + ["plots", "show", "-o", str(tmp_path / "page")], project)
    shown = RenderedPage(chromium(tmp_path / "page" / "index.html", tmp_path / "profile", "--dump-dom"), set(declared))
    assert shown.errors == ""
    assert curves <= shown.rendered and all(shown.marks[plot] >= 1 for plot in curves)


# Injected into a copy of a generated page, at the end of its head (after the libraries): once a plot
# has rendered, what vega drew (each line's vertices in data coordinates, each point's colour and
# shape) is written into the page, where --dump-dom shows it.
DRAWN_SCRIPT = """<script>
  (function () {
    var embed = window.vegaEmbed;
    window.vegaEmbed = function (element, spec, options) {
      return embed(element, spec, options).then(function (result) {
        var view = result.view, drawn = {lines: [], points: [], labels: {}};
        (function walk(group, dx, dy, orient) {
          (group.items || []).forEach(function (mark) {
            if (mark.marktype === "group") {
              mark.items.forEach(function (item) {
                walk(item, dx + (item.x || 0), dy + (item.y || 0), mark.role === "axis" ? item.orient : orient);
              });
            } else if (mark.role === "mark" && mark.marktype === "line") {
              drawn.lines.push(mark.items.map(function (item) {
                return [view.scale("x").invert(item.x + dx), view.scale("y").invert(item.y + dy)];
              }));
            } else if (mark.role === "axis-label") {
              drawn.labels[orient] = mark.items.map(function (item) { return item.text; });
            } else if (mark.role === "mark" && mark.marktype === "symbol") {
              mark.items.forEach(function (item) {
                drawn.points.push({datum: item.datum, fill: item.fill, shape: item.shape});
              });
            }
          });
        })(view.scenegraph().root.items[0], 0, 0, null);
        var out = document.createElement("pre");
        out.setAttribute("data-drawn", element.replace("#", ""));
        out.textContent = JSON.stringify(drawn);
        document.body.appendChild(out);
        return result;
      });
    };
  })();
</script>
"""
DRAWN = re.compile(r'<pre data-drawn="([^"]+)">(.*?)</pre>', re.DOTALL)
EMBED_CALL = re.compile(r"vegaEmbed\('#([^']+)'")
CURVES = ["plots/nn_eval/roc", "plots/nn_eval/pr", "plots/linear_eval/roc", "plots/linear_eval/pr"]
TSNE = "plots/tsne.csv"


def embedded_specs(page: str) -> dict[str, dict]:
    """The vega-lite spec of each plot div in a page DVC wrote, by div id."""
    decoder, specs = json.JSONDecoder(), {}
    for found in re.finditer(r"var spec = ", page):
        spec, end = decoder.raw_decode(page, found.end())
        specs[EMBED_CALL.search(page, end).group(1)] = spec
    return specs


def transforms(spec) -> list:
    """Every transform anywhere in a spec (its layers included)."""
    if isinstance(spec, dict):
        return list(spec.get("transform", [])) + [t for value in spec.values() for t in transforms(value)]
    return [t for value in spec for t in transforms(value)] if isinstance(spec, list) else []


@pytest.fixture(scope="module")
def pipeline_plots(tmp_path_factory) -> Path:
    """A DVC project with this repository's dvc.yaml, params, .dvc/ and page template, and small ROC, PR
    and t-SNE files where the stages write them (the curves written by the stages' own function)."""
    folder = tmp_path_factory.mktemp("pipeline_plots")
    run(["git", "init", "-q"], folder)
    shutil.copytree(PROJECT / ".dvc", folder / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    shutil.copytree(PROJECT / "plots_template", folder / "plots_template")
    shutil.copy2(PROJECT / "dvc.yaml", folder / "dvc.yaml")
    shutil.copy2(PROJECT / "params.yaml", folder / "params.yaml")  # dvc.yaml's foreach groups read it
    labels = [0] * 6 + [1] * 6
    rows = pd.DataFrame({"split": "test", "test_set": "transposed_conv", "label": labels})
    # 1-NN votes separate the set perfectly: the ROC goes straight up the left edge, then along the top.
    save_curves(str(folder / "plots/nn_eval"), rows, [0.0] * 6 + [1.0] * 6)
    # A head's scores, two reals above two fakes: the PR curve has vertical steps (points of equal recall).
    head_scores = [0.1, 0.2, 0.3, 0.35, 0.6, 0.7] + [0.4, 0.5, 0.65, 0.8, 0.9, 0.95]
    save_curves(str(folder / "plots/linear_eval"), rows, head_scores)
    generators = ["real"] * 4 + ["progan"] * 3 + ["stylegan"] * 3 + ["ldm"] * 2
    pd.DataFrame({"id": range(12), "split": "test", "test_set": "t", "label": [0] * 4 + [1] * 8,
                  "generator": generators, "family": "f", "x": np.arange(12.0), "y": np.arange(12.0) % 5}
                 ).to_csv(folder / TSNE, index=False)
    return folder


def with_templates(folder: Path) -> Path:
    """A new git and DVC project at `folder` with this repository's .dvc/config and plot templates."""
    folder.mkdir(parents=True)
    run(["git", "init", "-q"], folder)
    run(DVC + ["init", "-q"], folder)
    shutil.copy2(PROJECT / ".dvc" / "config", folder / ".dvc" / "config")
    shutil.copytree(PROJECT / "plots_template", folder / "plots_template")
    return folder


def stage_plots(stage: str) -> list:
    """The plots a stage of this repository's dvc.yaml declares (a foreach group: its `do`)."""
    declared = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"][stage]
    return declared.get("do", declared)["plots"]


def assert_stage_charts_render(project: Path, stage: str, count: int) -> None:
    """A stage's `count` vega plots as dvc.yaml declares them (their files already under `project`), drawn by
    `dvc plots show` with the offline template in headless Chromium: each one drawn, no script error."""
    run(["git", "init", "-q"], project)
    run(DVC + ["init", "-q"], project)
    shutil.copy2(PROJECT / ".dvc" / "config", project / ".dvc" / "config")
    shutil.copytree(PROJECT / "plots_template", project / "plots_template")
    (project / "dvc.yaml").write_text(yaml.safe_dump({"plots": stage_plots(stage)}))
    declared = declared_plots(project)
    assert set(declared.values()) == {"vega"} and len(declared) == count
    run(DVC + ["plots", "show"], project)
    shown = RenderedPage(chromium(project / "dvc_plots" / "index.html", project / "profile", "--dump-dom"),
                         set(declared))
    assert shown.errors == ""
    assert shown.rendered == set(declared) and all(shown.marks[plot] >= 1 for plot in declared)


@pytest.fixture(scope="module")
def robustness_project(tmp_path_factory) -> Path:
    """A DVC project with this repository's template and the robustness curves as dvc.yaml declares
    them, drawn from small curve files of the stage's format."""
    folder = tmp_path_factory.mktemp("robustness_plots")
    run(["git", "init", "-q"], folder)
    run(DVC + ["init", "-q"], folder)
    shutil.copy2(PROJECT / ".dvc" / "config", folder / ".dvc" / "config")
    shutil.copytree(PROJECT / "plots_template", folder / "plots_template")
    declared = [entry for entry in stage_plots("robustness") if isinstance(entry, dict)]
    for entry in declared:
        path, spec = next(iter(entry.items()))
        points = ["clean", "90", "50"] if spec["x"] == "jpeg_quality" else ["clean", "1", "2"]
        lines = [f"{x},{name},{80 - 10 * i + j},{95 - 5 * i - j}" for i, x in enumerate(points)
                 for j, name in enumerate(["seen", "unseen", "mean"])]
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(f"{spec['x']},test_set,acc,ap\n" + "\n".join(lines) + "\n")
    (folder / "dvc.yaml").write_text(yaml.safe_dump({"plots": declared}, sort_keys=False))
    return folder


@needs_chromium
def test_curves_are_drawn_through_their_points_and_tsne_as_its_picture(pipeline_plots, tmp_path):
    """ROC and PR curves: no smoothing transform in their specs, and the lines drawn pass through the
    points of their files in the files' order (DVC's default template draws the 1-NN ROC as a line
    from (0, 0.5) to (1, 1)). The t-SNE points are coloured by class and shaped by generator."""
    declared = declared_plots(pipeline_plots, *CURVES, TSNE)
    curve_files = sorted(str(p.relative_to(pipeline_plots)) for c in CURVES for p in (pipeline_plots / c).glob("*.csv"))
    assert {Renderer.remove_special_chars(f) for f in curve_files + [TSNE]} == set(declared)
    run(DVC + ["plots", "show", *CURVES, TSNE], pipeline_plots)
    html = (pipeline_plots / "dvc_plots" / "index.html").read_text(encoding="utf8")
    page = tmp_path / "index.html"
    head, end_of_head, body = html.rpartition("</head>")  # the page's own, after the libraries' code
    page.write_text(head + DRAWN_SCRIPT + end_of_head + body, encoding="utf8")
    dom = chromium(page, tmp_path / "profile", "--dump-dom")
    shown = RenderedPage(dom, set(declared))
    assert shown.errors == "" and shown.rendered == set(declared)
    drawn = {plot: json.loads(unescape(text)) for plot, text in DRAWN.findall(dom)}
    specs = embedded_specs(html)

    for name in curve_files:
        plot = Renderer.remove_special_chars(name)
        assert transforms(specs[plot]) == [], f"{name} is drawn with transforms of its points"
        points = pd.read_csv(pipeline_plots / name).to_numpy()
        assert len(drawn[plot]["lines"]) == 1, f"{name}: {len(drawn[plot]['lines'])} lines drawn"
        line = np.array(drawn[plot]["lines"][0])
        if line.shape == points.shape and np.allclose(line[::-1], points, atol=0.005):
            line = line[::-1]  # the same line, drawn from its other end
        np.testing.assert_allclose(line, points, atol=0.005, err_msg=name)  # 0.005: under 2 pixels

    tsne = pd.read_csv(pipeline_plots / TSNE)
    points = drawn[Renderer.remove_special_chars(TSNE)]["points"]
    assert len(points) == len(tsne)
    assert all(p["fill"] == to_hex(CLASS_COLOURS[int(p["datum"]["label"])]) for p in points)  # as in tsne.png
    shape_of = {p["datum"]["generator"]: p["shape"] for p in points}
    assert all(shape_of[p["datum"]["generator"]] == p["shape"] for p in points)
    assert len(set(shape_of.values())) == tsne.generator.nunique()


@needs_chromium
def test_robustness_curves_render_offline(robustness_project, tmp_path):
    declared = declared_plots(robustness_project)
    assert len(declared) == 4 and set(declared.values()) == {"vega"}  # 2 methods x JPEG, blur; accuracy and AP in each
    run(DVC + ["plots", "show"], robustness_project)
    page = robustness_project / "dvc_plots" / "index.html"
    shown = RenderedPage(chromium(page, tmp_path / "profile", "--dump-dom"), set(declared))
    assert shown.errors == ""
    assert shown.rendered == set(declared)
    assert all(shown.marks[plot] >= 1 for plot in declared)


@needs_chromium
def test_training_curves_show_the_learning_rate_schedule(tmp_path):
    """linear_train's DVCLive curves as dvc.yaml declares them: each epoch's value drawn as it is; the
    learning rate on a log scale with its ticks in powers of ten (DVC's default template drew the FCNN's
    constant 0.001 as a flat line on an axis labelled 0), a stepped schedule as even steps."""
    project = with_templates(tmp_path / "project")
    (declared,) = [entry for entry in stage_plots("linear_train") if "dvclive/linear_train/plots" in entry]
    folder = project / "dvclive/linear_train/plots/metrics"
    series = {"train/loss": [0.69, 0.5, 0.41, 0.4, 0.39, 0.39],
              "train/learning_rate": [1e-4, 1e-4, 1e-4, 1e-5, 1e-5, 1e-6],  # the linear probe's schedule
              "eval/learning_rate": [1e-3, 1e-3, 1e-3]}  # the FCNN's constant rate (a split of its own here)
    for name, values in series.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        figure = name.split("/")[1]
        (folder / f"{name}.tsv").write_text(f"step\t{figure}\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(values)))
    (project / "dvc.yaml").write_text(yaml.safe_dump({"plots": [declared]}, sort_keys=False))
    run(DVC + ["plots", "show"], project)
    html = (project / "dvc_plots" / "index.html").read_text(encoding="utf8")
    page = tmp_path / "index.html"
    head, end_of_head, body = html.rpartition("</head>")
    page.write_text(head + DRAWN_SCRIPT + end_of_head + body, encoding="utf8")
    dom = chromium(page, tmp_path / "profile", "--dump-dom")
    drawn = {plot: json.loads(unescape(text)) for plot, text in DRAWN.findall(dom)}
    plot = {name: Renderer.remove_special_chars(f"dvclive/linear_train/plots/metrics/{name}.tsv") for name in series}
    assert RenderedPage(dom, set(plot.values())).errors == "" and set(drawn) == set(plot.values())
    for name, values in series.items():
        (line,) = drawn[plot[name]]["lines"]
        expected = np.log10(values) if "learning_rate" in name else values
        np.testing.assert_allclose(np.array(line), np.column_stack([np.arange(len(values)), expected]), atol=0.01,
                                   err_msg=name)
    labels = {name: drawn[plot[name]]["labels"] for name in series}  # each axis's tick labels, by side
    assert {"1e-4", "1e-5", "1e-6"} <= set(labels["train/learning_rate"]["left"])
    assert labels["eval/learning_rate"] == {"left": ["1e-3"], "bottom": ["0", "1", "2"]}  # whole epochs only
    assert {"0.4", "0.5", "0.6"} <= set(labels["train/loss"]["left"])  # loss: a linear scale, its own digits
    assert labels["train/loss"]["bottom"] == ["0", "1", "2", "3", "4", "5"]


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


# plots the shortcut audit and the format-aligned condition write, as their stages write them
AUDIT_CSV = ("set,auc,value,flagged\ntest/biased,shortcut,1.0,True\ntest/biased,transfer,0.62,True\n"
             "test/clean,shortcut,0.5,False\ntest/clean,transfer,0.5,False\ntrain,shortcut,0.5,False\n")
ALIGNED_CSV = ("detector,test_set,condition,ap,acc_calibrated\nknn,biased,clean,100.0,95.0\nknn,biased,aligned,99.0,90.0\n"
               "knn,real_jpeg80,clean,,92.0\nknn,real_jpeg80,aligned,,90.0\nprobe,biased,clean,36.2,\n"
               "probe,biased,aligned,35.3,\n")


@needs_chromium
@pytest.mark.parametrize("stage, path, text", [("audit", "plots/audit.csv", AUDIT_CSV),
                                               ("compare", "plots/compare/aligned.csv", ALIGNED_CSV)])
def test_the_shortcut_audit_and_the_aligned_condition_render_offline(tmp_path, capsys, stage, path, text):
    """Drawn with the templates dvc.yaml names, from files shaped as the stages write them (a flagged
    set; a detector without AP on a real-only set, another without a calibrated accuracy)."""
    folder = with_templates(tmp_path / "plots_project")
    declared = [entry for entry in stage_plots(stage) if isinstance(entry, dict) and path in entry]
    (folder / path).parent.mkdir(parents=True, exist_ok=True)
    (folder / path).write_text(text)
    (folder / "dvc.yaml").write_text(yaml.safe_dump({"plots": declared}, sort_keys=False))
    shown_plots = declared_plots(folder)
    assert set(shown_plots.values()) == {"vega"} and len(shown_plots) == 1
    run(DVC + ["plots", "show"], folder)
    page = folder / "dvc_plots" / "index.html"
    shown = RenderedPage(chromium(page, tmp_path / "profile", "--dump-dom"), set(shown_plots))
    assert shown.errors == ""
    assert shown.rendered == set(shown_plots) and all(shown.marks[plot] >= 1 for plot in shown_plots)
    screenshot = tmp_path / f"{stage}_plot.png"
    chromium(page, tmp_path / "profile-shot", f"--screenshot={screenshot}", "--window-size=900,700")
    with capsys.disabled():
        print(f"\n{stage} plot screenshot: {screenshot}")

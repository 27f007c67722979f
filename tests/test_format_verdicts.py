"""Predict and serve say when a verdict rests on the file: each image's file facts, its score again after
the run's aligned re-encoding (JPEG 96), and a flag when the verdict changes (docs/shortcuts.md)."""
import csv
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fakedetect.artifacts import LINEAR_REPORT
from fakedetect.data import manifests
from serve_server import post_files, running_server, serve_env

PREDICT = [sys.executable, "-m", "fakedetect", "predict", "--classifier", "linear", "--no-family"]


def predict(project, *args) -> subprocess.CompletedProcess:
    return subprocess.run(PREDICT + ["--project", str(project), *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=project, env=serve_env())


def as_json(result) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def flipping(trained_project, tmp_path_factory):
    """A copy of the trained run whose linear head's calibrated threshold lies between one test image's
    score and its score after re-saving as JPEG 96: that image's verdict flips, by construction."""
    project = tmp_path_factory.mktemp("flipping") / "run"
    shutil.copytree(trained_project, project, symlinks=True, ignore=shutil.ignore_patterns(".dvc", ".git"))
    rows = manifests.read_manifest(project / "data/manifest.csv")
    candidates = [project / p for p in rows[(rows.split == "test") & (rows.test_set == "format_biased")].path[:8]]
    scored = as_json(predict(project, "--json", *candidates))
    gap = max(scored, key=lambda g: abs(g["p_fake"] - g["aligned_p_fake"]))
    assert abs(gap["p_fake"] - gap["aligned_p_fake"]) > 1e-4, "re-saving as JPEG 96 changed no score"
    report = json.loads((project / LINEAR_REPORT).read_text())
    report["calibrated_threshold"] = (gap["p_fake"] + gap["aligned_p_fake"]) / 2
    (project / LINEAR_REPORT).write_text(json.dumps(report))
    return project, gap["path"], scored


def test_each_prediction_has_its_file_facts_and_its_aligned_score(flipping, tmp_path):
    """The aligned score is the score of the same image re-saved by Pillow as JPEG 96."""
    project, _, scored = flipping
    first = scored[0]
    assert (first["file_format"], first["file_jpeg_quality"]) in (("JPEG", 95), ("JPEG", 96), ("JPEG", 97), ("PNG", None))
    assert first["aligned_as"] == "re-saved as JPEG 96" and isinstance(first["verdict_rests_on_file"], bool)
    resaved = tmp_path / "resaved.jpg"
    Image.open(first["path"]).convert("RGB").save(resaved, quality=96)
    again = as_json(predict(project, "--json", "--no-aligned", resaved))[0]
    assert "aligned_p_fake" not in again and again["file_format"] if "file_format" in again else True
    np.testing.assert_allclose(again["p_fake"], first["aligned_p_fake"], atol=1e-6)


def test_predict_flags_a_verdict_that_flips_in_json_csv_and_table(flipping):
    project, path, _ = flipping
    got = as_json(predict(project, "--json", path))[0]
    assert got["verdict_rests_on_file"] is True and got["fake"] != got["aligned_fake"]
    assert got["fake"] == (got["p_fake"] > got["threshold"]) and got["aligned_fake"] == (got["aligned_p_fake"] > got["threshold"])
    result = predict(project, "--csv", path)
    assert result.returncode == 0, result.stderr
    row = next(csv.DictReader(io.StringIO(result.stdout)))
    assert row["verdict_rests_on_file"] == "True" and row["aligned_as"] == "re-saved as JPEG 96"
    table = predict(project, path)
    assert "*" in table.stdout.splitlines()[1]
    assert "1 verdicts (* in the table) change when the image is re-saved as JPEG 96" in table.stderr


def test_serve_says_so_in_words(flipping):
    project, path, _ = flipping
    with running_server(project) as url:
        status, body = post_files(url, [path])
    assert status == 200, body
    image = body["images"][0]
    assert image["verdict_rests_on_file"] is True and image["file_format"] in ("JPEG", "PNG")
    page = (project.parent / "page.js")
    shutil.copy(__import__("fakedetect.serve", fromlist=["app"]).__path__[0] + "/static/page.js", page)
    assert "The verdict changes when the image is ${image.aligned_as}" in page.read_text()

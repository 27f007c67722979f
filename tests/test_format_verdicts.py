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

from fakedetect.artifacts import DETECTOR_MODELS, PROTOCOLS_REPORT
from fakedetect.data import manifests
from fakedetect.predict import default_detector
from serve_server import post_files, running_server, serve_env

PREDICT = [sys.executable, "-m", "fakedetect", "predict", "--no-family"]


def predict(project, *args) -> subprocess.CompletedProcess:
    return subprocess.run(PREDICT + ["--project", str(project), *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=project, env=serve_env())


def as_json(result) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def flipping(trained_project, tmp_path_factory):
    """A copy of the trained run whose default detector's calibrated threshold lies between one test image's
    score and its score after re-saving as JPEG 96: that image's verdict flips, by construction."""
    project = tmp_path_factory.mktemp("flipping") / "run"
    shutil.copytree(trained_project, project, symlinks=True,
                    ignore=lambda folder, names: [n for n in names if n == ".git" or (n == "cache" and folder.endswith(".dvc"))])
    rows = manifests.read_manifest(project / "data/manifest.csv")
    candidates = [project / p for p in rows[(rows.split == "test") & (rows.test_set == "format_biased")].path]
    scored = as_json(predict(project, "--json", *candidates))
    gap = max(scored, key=lambda g: abs(g["score"] - g["aligned_score"]))
    assert abs(gap["score"] - gap["aligned_score"]) > 1e-6, "re-saving as JPEG 96 changed no score"
    best, choice, _ = default_detector(project)
    threshold = (gap["score"] + gap["aligned_score"]) / 2
    if choice:  # a protocol ran: its choice's threshold is the one predict applies
        report = json.loads((project / PROTOCOLS_REPORT).read_text())
        report["choice"]["threshold"] = threshold
        (project / PROTOCOLS_REPORT).write_text(json.dumps(report))
    else:
        details = project / DETECTOR_MODELS / best / "detector.json"
        saved = json.loads(details.read_text())
        saved["thresholds"]["calibrated"] = threshold
        details.write_text(json.dumps(saved))
    return project, gap["path"], scored


def test_each_prediction_has_its_file_facts_and_its_aligned_score(flipping, tmp_path):
    """The aligned score is the score of the same image re-saved by Pillow as JPEG 96."""
    _, _, scored = flipping
    for got in scored:
        assert got["aligned_as"] == "re-saved as JPEG 96"
        assert got["verdict_rests_on_file"] == (got["fake"] != got["aligned_fake"])
        if got["path"].endswith(".png"):
            assert (got["file_format"], got["file_width"], got["file_jpeg_quality"]) == ("PNG", 256, None)
        else:
            assert got["file_format"] == "JPEG" and got["file_jpeg_quality"] in (95, 96, 97)
    first = scored[0]
    resaved = tmp_path / "resaved.jpg"
    Image.open(first["path"]).convert("RGB").save(resaved, quality=96)
    again = as_json(predict(flipping[0], "--json", "--no-aligned", resaved))[0]
    assert "aligned_p_fake" not in again and "file_format" not in again
    np.testing.assert_allclose([again["p_fake"], again["score"]], [first["aligned_p_fake"], first["aligned_score"]],
                               atol=1e-6)


def test_predict_flags_a_verdict_that_flips_in_json_csv_and_table(flipping):
    project, path, _ = flipping
    got = as_json(predict(project, "--json", path))[0]
    assert got["verdict_rests_on_file"] is True and got["fake"] != got["aligned_fake"]
    assert got["fake"] == (got["score"] > got["threshold"])
    assert got["aligned_fake"] == (got["aligned_score"] > got["threshold"])
    result = predict(project, "--csv", path)
    assert result.returncode == 0, result.stderr
    row = next(csv.DictReader(io.StringIO(result.stdout)))
    assert row["verdict_rests_on_file"] == "True" and row["aligned_as"] == "re-saved as JPEG 96"
    table = predict(project, path)
    assert table.returncode == 0 and table.stdout.splitlines()[1].split()[2].endswith("*")
    assert "1 verdicts (* in the table) change when the image is re-saved as JPEG 96" in table.stderr


def test_serve_flags_it_and_the_page_says_so_in_words(flipping):
    project, path, _ = flipping
    with running_server(project) as url:
        status, body = post_files(url, [(path.rsplit("/", 1)[-1], open(path, "rb").read())])
        assert status == 200, body
        image = body["images"][0]
        assert image["verdict_rests_on_file"] is True and image["file_format"] in ("JPEG", "PNG")
        if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
            pytest.skip("the page's words need Debian's chromium and chromium-driver")
        from test_serve_browser import browser, wait_for

        driver = browser()
        try:
            driver.get(url)
            wait_for(driver, "#run")
            driver.find_element("id", "pick-files").send_keys(path)
            card = wait_for(driver, ".card")[0]
            assert "The verdict changes when the image is re-saved as JPEG 96" in card.text
            assert "File: " in card.text
            row = driver.find_element("css selector", "#table tbody tr").text
            assert "the verdict changes when the image is re-saved as JPEG 96" in row
        finally:
            driver.quit()


def test_compare_reports_every_detector_clean_and_aligned_side_by_side(trained_project):
    """reports/compare.json: per detector and test set the clean and the aligned figures on the same images
    and their change; metrics/format_reliance.json: two figures per detector, named as compare.json's;
    the test sets' fingerprints equal ingest's."""
    def read(name):
        return json.loads((trained_project / name).read_text())

    report, headline, reliance = read("reports/compare.json"), read("metrics/compare.json"), read(
        "metrics/format_reliance.json")
    aligned = report["aligned"]
    assert aligned["condition"] == "jpeg96" and aligned["images"]["format_biased/fake"] == 6
    assert set(aligned["detectors"]) == set(headline) == set(reliance)
    for name, entry in aligned["detectors"].items():
        assert set(reliance[name]) == {"ap", "acc_calibrated"} <= set(headline[name])
        changes = {f: [row["change"][f] for row in entry["test_sets"].values() if row["change"][f] is not None]
                   for f in ("ap", "acc_calibrated")}
        assert reliance[name] == {f: min(found) if found else None for f, found in changes.items()}
        row = entry["test_sets"]["format_biased"]
        assert (row["n_real"], row["n_fake"]) == (6, 6)
        assert row["change"]["ap"] == round(row["aligned"]["ap"] - row["clean"]["ap"], 4)
    ingest = read("reports/ingest.json")["fingerprints"]
    assert report["fingerprints"]["test/format_biased"] == ingest["test/format_biased"]
    assert aligned["fingerprints"]["test/format_biased"] == ingest["test/format_biased"]  # 6 + 6: the whole set


def test_a_second_compare_encodes_no_aligned_image(flipping):
    project, _, _ = flipping
    # Under pytest-xdist this worker's feature store may not be the one the shared project was built
    # with: the first run fills it if need be, the second must find every aligned view there.
    for _ in range(2):
        result = subprocess.run([sys.executable, "stages/compare.py"], cwd=project, env=serve_env(),
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
    assert "aligned condition: 0 images encoded in this run" in result.stderr

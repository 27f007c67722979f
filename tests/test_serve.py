"""`fakedetect serve`: its API scores as `fakedetect predict --json` does, refuses bad input with
the documented status codes (docs/serve.md "HTTP API") and keeps serving, and names the stage
to run on a workspace without a trained run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serve_server import get, post_files, running_server, serve_env, stream_files

from fakedetect.detectors import neighbours, registry
from fakedetect.detectors.registry import needs_noisy_views

SHARED = ["status", "reason", "p_fake", "fake", "threshold", "fake_at_0_5", "family", "p_family"]


@pytest.mark.fast
def test_top_k_matches_a_full_sort_in_any_chunking():
    rng = np.random.default_rng(0)
    bank, queries = rng.normal(size=(50, 8)).astype(np.float32), rng.normal(size=(3, 8)).astype(np.float32)
    bank_rows = np.arange(5, 45)
    unit = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    expected = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit[bank_rows].T
    for chunk in (1, 7, 4096):
        indices, similarities = neighbours.top_k(queries, bank, 4, chunk, bank_rows=bank_rows)
        order = np.argsort(-expected, axis=1, kind="stable")[:, :4]
        np.testing.assert_array_equal(indices, bank_rows[order])
        np.testing.assert_allclose(similarities, np.take_along_axis(expected, order, axis=1), rtol=1e-5)
    indices, similarities = neighbours.top_k(queries, bank, 3, bank_rows=np.array([7, 2]))
    assert (indices[:, 2] == -1).all() and np.isneginf(similarities[:, 2]).all()


def demo_images(project: Path, n: int) -> list[Path]:
    """n demo test images, real and fake alternately."""
    found = sorted((project / "data" / "demo" / "test").rglob("*.*"))
    found = [p for p in found if p.suffix.lower() in (".png", ".jpg", ".jpeg")]
    return found[:: max(1, len(found) // n)][:n]


def predict_json(project: Path, paths: list[Path], *args: str) -> list[dict]:
    result = subprocess.run([sys.executable, "-m", "fakedetect", "predict", "--json", "--project", str(project),
                             *args, *map(str, paths)], env=serve_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def served(trained_project):
    with running_server(trained_project, "--max-upload-mb", "1") as url:
        yield trained_project, url


def test_api_scores_as_predict_json_does(served):
    """Every detector the compare stage saved that predict can run, predict's default first (its
    fields are the image's own: predict's JSON), each at its own saved thresholds."""
    project, url = served
    saved = registry.saved(project / "models" / "detectors")
    runnable = [n for n in saved if not needs_noisy_views(n, saved)]
    paths = demo_images(project, 6)
    status, body = post_files(url, [(p.name, p.read_bytes()) for p in paths], "?heatmap=0")
    assert status == 200
    images = body["images"]
    assert [i["path"] for i in images] == [p.name for p in paths]
    default = predict_json(project, paths, "--all")
    best = default[0]["detector"]
    other = next(n for n in runnable if n != best)
    for image, expected in zip(images, default):
        assert {k: image[k] for k in SHARED + ["detector", "score"]} == {k: expected[k] for k in SHARED + ["detector", "score"]}
        assert "heatmap" not in image
        names = [d["name"] for d in image["detectors"]]
        assert names[0] == best and sorted(names) == sorted(runnable)
        assert [d["default"] for d in image["detectors"]] == [True] + [False] * (len(names) - 1)
        first = image["detectors"][0]
        assert (first["p_fake"], first["score"], first["fake"]) == (expected["p_fake"], expected["score"], expected["fake"])
        assert [d["fake"] for d in first["decisions"] if d["point"] == "calibrated"] == [expected["fake"]]
        for d in image["detectors"]:
            assert d["p_fake"] == expected[f"p_fake_{d['name']}"]
    for image, expected in zip(images, predict_json(project, paths, "--detector", other, "--no-family")):
        found = next(d for d in image["detectors"] if d["name"] == other)
        assert (found["p_fake"], found["score"], found["fake"]) == (expected["p_fake"], expected["score"], expected["fake"])
        labels = [d["label"] for d in found["decisions"]]
        assert labels == ["at the calibrated threshold", "at the 1% false-alarm point", "at the 5% false-alarm point"]
        thresholds = saved[other]["thresholds"]
        assert [d["threshold"] for d in found["decisions"]] == [thresholds[k] for k in ("calibrated", "tpr_at_fpr1", "tpr_at_fpr5")]
        assert [d["fake"] for d in found["decisions"]] == [found["score"] > d["threshold"] for d in found["decisions"]]
    info = get(url + "api/info")[1]
    info = json.loads(info)
    assert [d["name"] for d in info["detectors"]] == names and info["detectors"][0]["default"]
    assert sorted(d["name"] for d in info["left_out"]) == sorted(set(saved) - set(runnable))


def test_evidence_neighbours_thumbnails_and_heatmap(served):
    project, url = served
    path = demo_images(project, 1)[0]
    status, body = post_files(url, [(path.name, path.read_bytes())])
    image = body["images"][0]
    assert status == 200 and image["heatmap"].startswith("data:image/png;base64,")
    near = image["neighbours"]
    assert len(near) == 5 and near == sorted(near, key=lambda n: -n["similarity"])
    rows = __import__("pandas").read_csv(project / "data" / "features" / "rows.csv")
    for n in near:
        assert rows.split[n["row"]] == "train"
        assert (n["label"], n["generator"]) == (("real", "fake")[rows.label[n["row"]]], rows.generator[n["row"]])
        code, data, kind = get(url + n["thumbnail"])
        assert code == 200 and kind == "image/jpeg" and data[:2] == b"\xff\xd8"
    # a demo image of the training split finds itself first
    train = rows[rows.split == "train"].iloc[0]
    status, body = post_files(url, [("own.png", (project / train.image).read_bytes())], "?heatmap=0")
    assert body["images"][0]["neighbours"][0]["row"] == int(train.name)
    assert body["images"][0]["neighbours"][0]["similarity"] == pytest.approx(1.0, abs=1e-3)


def test_bad_input_gets_its_status_and_the_server_keeps_serving(served, tmp_path):
    project, url = served
    good = demo_images(project, 1)[0]
    data = good.read_bytes()
    bomb = tmp_path / "bomb.png"
    Image.new("1", (12000, 8000)).save(bomb)  # 96 Mpx in 12 kB: more than the run's ingest.max_pixels
    cases = {"empty.jpg": (b"", 400, "empty_file"), "truncated" + good.suffix: (data[: len(data) // 2], 400, "truncated"),
             "notes.png": (b"not an image at all\n" * 20, 415, "not_an_image"),
             "bomb.png": (bomb.read_bytes(), 422, "decompression_bomb")}
    for name, (content, code, reason) in cases.items():
        status, body = post_files(url, [(name, content)])
        assert (status, body["images"][0]["reason"]) == (code, reason), name
        assert body["images"][0]["message"]
    # over --max-upload-mb 1: the whole request ends there (tests/test_serve_uploads.py measures how soon)
    status, body = post_files(url, [(good.name, data), ("huge.jpg", os.urandom(2**20 + 1))])
    assert (status, body["error"]) == (413, "file_too_large") and "huge.jpg" in body["message"]
    status, body, sent = stream_files(url, [("huge.jpg", 30 * 2**20, iter([b"\0" * 2**16] * 480))], chunked=True)
    assert (status, body["error"]) == (413, "file_too_large") and sent < 10 * 2**20
    status, body = post_files(url, [])
    assert status == 400 and body["error"] == "no_file"
    status, body = post_files(url, [("notes.png", b"text"), (good.name, data)])
    assert status == 200 and [i["status"] for i in body["images"]] == ["unreadable", "ok"]
    assert body["images"][0]["http_status"] == 415
    for path in ("api/thumbnail/-1", "api/thumbnail/99999999", "api/thumbnail/..%2f..%2fdvc.lock",
                 "static/..%2f..%2fdvc.lock", "api/thumbnail/" + str(project / "dvc.lock")):
        assert get(url + path)[0] == 404, path


def test_a_workspace_without_a_trained_run_names_the_stage_to_run(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fakedetect", "serve", "--project", str(tmp_path), "--port", "1"],
                            env=serve_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "make repro" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "dvc.lock").write_text((Path(__file__).resolve().parents[1] / "dvc.lock").read_text())
    result = subprocess.run([sys.executable, "-m", "fakedetect", "serve", "--project", str(tmp_path), "--port", "1"],
                            env=serve_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "dvc repro extract_clip" in result.stderr


@pytest.mark.fast
def test_decisions_apply_each_operating_point_to_the_detector_score(tmp_path):
    from fakedetect.predict import Prediction
    from fakedetect.serve import verdicts

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "nn_eval.json").write_text(json.dumps(
        {"calibrated_threshold": 0.01, "operating_thresholds": {"tpr_at_fpr1": 0.05, "tpr_at_fpr5": None}}))
    points = verdicts.operating_points(verdicts.report_thresholds(tmp_path, "nn"))
    assert [p["label"] for p in points] == ["at the calibrated threshold", "at the 1% false-alarm point"]
    scored = Prediction(path="a.png", status="ok", p_fake=1.0, fake=True, threshold=0.01, extra={"nn_score": 0.02})
    entry = verdicts.detector_entry("nn", "1-NN", scored, points)
    assert entry["score"] == 0.02 and [d["fake"] for d in entry["decisions"]] == [True, False]
    # a saved detector: its own thresholds, applied to the ranking score predict reports
    saved = {"p_fake": 0.5, "calibrated": 0.3, "tpr_at_fpr1": 0.9, "tpr_at_fpr5": 0.6}
    points = verdicts.operating_points(saved)
    assert [p["threshold"] for p in points] == [0.3, 0.9, 0.6]
    scored = Prediction(path="a.png", status="ok", p_fake=0.4, fake=True, threshold=0.3, extra={"detector": "x", "score": 0.7})
    entry = verdicts.detector_entry("x", "x", scored, points, default=True)
    assert entry["default"] and entry["score"] == 0.7 and [d["fake"] for d in entry["decisions"]] == [True, False, True]
    assert verdicts.detector_entry("nn", "1-NN", Prediction(path="b", status="unreadable"), points)["decisions"] == []


@pytest.mark.fast
def test_one_decision_per_score_near_the_threshold():
    """Scores a hair either side of a calibrated threshold of 3e-6 (the demo's blocks detector's),
    as float32 as detectors give them: serve's decision at each point is the comparison predict's
    `fake` comes from, on the unrounded score; the rounding (6 decimals, where all three read
    3e-06) is only what is shown."""
    from fakedetect.predict import Detector, Prediction
    from fakedetect.serve import verdicts

    threshold = 3e-6
    scores = np.array([threshold + 4e-7, threshold - 4e-7, threshold], dtype=np.float32)  # float32(3e-6) > 3e-6
    detector = Detector.__new__(Detector)  # no run behind it: only its decision on these scores
    detector.detector, detector.threshold, detector._others = "blocks", threshold, {}
    detector._score = lambda features: (np.full(len(features), 0.4, np.float32), scores)
    batch = [Prediction(path=f"{i}.png", status="unreadable") for i in range(3)]
    detector.score_features(batch, np.zeros((3, 4), np.float32))
    assert [p.fake for p in batch] == [True, False, True]
    points = verdicts.operating_points({"calibrated": threshold, "tpr_at_fpr5": threshold, "tpr_at_fpr1": 1e-3})
    for p in batch:
        entry = verdicts.detector_entry("blocks", "blocks", p, points, default=True)
        assert [d["fake"] for d in entry["decisions"]] == [p.fake, False, p.fake]
        assert entry["score"] == p.row()["score"] == 3e-6 and p.row()["p_fake"] == 0.4

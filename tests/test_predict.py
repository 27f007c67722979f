"""`fakedetect predict` on a trained run: the pipeline's own scores, parseable output, bad inputs."""
import csv
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from fakedetect.data import images, manifests, preprocess  # torchvision before TensorFlow
from fakedetect.features import feature_files  # torchvision before TensorFlow
from fakedetect.attribution import network
from fakedetect.artifacts import DETECTOR_MODELS, LINEAR_MODEL, LINEAR_REPORT
from fakedetect.detectors import registry
from fakedetect.predict import FIELDS, best_detector, default_detector
from fakedetect.detectors.registry import needs_noisy_views

PREDICT = [sys.executable, "-m", "fakedetect", "predict"]


def predict(project, *args, prefix: str | None = None, env: dict | None = None):
    cmd = PREDICT if prefix is None else [sys.executable, "-c", prefix + "; import sys; from fakedetect.cli import main; "
                                          "sys.exit(main(sys.argv[1:]))", "predict"]
    return subprocess.run(cmd + ["--project", str(project), *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=project, env=env)


@pytest.fixture(scope="module")
def pipeline_scores(trained_project):
    """The pipeline's own P(fake) for every feature row: its trained head on its features."""
    from fakedetect.detectors import keras_heads

    matrix, rows = feature_files.load_features(trained_project / "data/features")
    rows["p_fake"] = keras_heads.predict(keras_heads.load(trained_project / "models/linear.keras"), matrix)
    return rows


def test_predictions_reproduce_the_pipeline_scores(trained_project, pipeline_scores):
    """--classifier linear: linear_eval's head, as the pipeline scored its own images."""
    rows = manifests.read_manifest(trained_project / "data/preprocessed.csv").merge(
        pipeline_scores[["id", "p_fake"]], on="id")
    test = rows[rows.split == "test"].groupby("test_set").head(2)  # raw test files: centre crop + backbone
    train = rows[rows.split == "train"].head(4)  # training images as the pipeline saw them: preprocessed
    inputs = list(test.path) + list(train.image)
    result = predict(trained_project, "--classifier", "linear", "--json", *inputs)
    assert result.returncode == 0, result.stderr
    got = [json.loads(line) for line in result.stdout.splitlines()]
    assert [g["path"] for g in got] == inputs
    np.testing.assert_allclose([g["p_fake"] for g in got], list(test.p_fake) + list(train.p_fake), atol=1e-5)
    threshold = json.loads((trained_project / LINEAR_REPORT).read_text())["calibrated_threshold"]
    for g in got:
        assert set(FIELDS) <= set(g) and g["status"] == "ok" and g["threshold"] == threshold
        assert g["fake"] == (g["p_fake"] > threshold) and g["fake_at_0_5"] == (g["p_fake"] > 0.5)
        assert (g["family"] in ("gan", "diffusion")) == g["fake"]


def compare_scoring(project, name: str, matrix: np.ndarray, layers: list) -> registry.Scored:
    """A saved detector's scoring of feature rows as the compare stage scores them (a fusion reads
    its members' ranking scores)."""
    folder = project / DETECTOR_MODELS
    detector = registry.load(folder / name)
    members = {m: registry.load(folder / m) for m in detector.spec.settings.members} if detector.spec.kind == "fusion" else {}

    def inputs(found, scores=None):
        return registry.Inputs(*registry.view(matrix, layers, found.spec.features, name), {}, scores or {})

    return detector.score(inputs(detector, {m: d.score(inputs(d)).ranking for m, d in members.items()}))


def test_default_is_the_best_detector_and_scores_as_the_compare_stage(trained_project):
    """Without --detector or --classifier: the protocols stage's choice when it made one (the best mean
    held-out AP, at its held-out threshold), else the detector the compare stage reported as predict's
    default (chosen on out-of-sample validation figures, at its own calibrated threshold); P(fake) and
    the score are the compare stage's on the pipeline's own features of the same images."""
    saved = registry.saved(trained_project / DETECTOR_MODELS)
    compare_choice, why = best_detector(trained_project / DETECTOR_MODELS)
    chosen = json.loads((trained_project / "reports/compare.json").read_text())["default"]
    assert chosen == {"detector": compare_choice, "why": why} and registry.out_of_sample(saved[compare_choice])
    assert "linear_probe (in-sample: its early stopping watches the validation accuracy)" in why
    best, held_out, _ = default_detector(trained_project)
    assert held_out == json.loads((trained_project / "reports/protocols.json").read_text())["choice"]
    assert best == (held_out["detector"] if held_out else compare_choice)
    matrix, features = feature_files.load_features(trained_project / "data/features")
    layers = feature_files.load_layers(trained_project / "data/features", matrix.shape[1])
    rows = manifests.read_manifest(trained_project / "data/preprocessed.csv")
    test = rows[rows.split == "test"].groupby("test_set").head(2)  # raw test files: centre crop + backbone
    val = rows[rows.split == "val"].head(4)  # validation images as the pipeline saw them: preprocessed
    inputs = list(test.path) + list(val.image)
    result = predict(trained_project, "--json", *inputs)
    assert result.returncode == 0, result.stderr
    assert "scoring with the linear head" not in result.stderr  # no fallback
    got = [json.loads(line) for line in result.stdout.splitlines()]
    positions = features.reset_index().set_index("id").loc[list(test.id) + list(val.id), "index"].to_numpy()
    expected = compare_scoring(trained_project, best, matrix[positions], layers)
    threshold = (held_out["threshold"] if held_out and held_out["threshold"] is not None
                 else saved[best]["thresholds"]["calibrated"])
    assert [g["detector"] for g in got] == [best] * len(inputs)
    np.testing.assert_allclose([g["p_fake"] for g in got], expected.p_fake, atol=1e-5)
    np.testing.assert_allclose([g["score"] for g in got], expected.ranking, atol=1e-5)
    for g in got:
        assert g["status"] == "ok" and g["threshold"] == threshold
        assert g["fake"] == (g["score"] > threshold) and g["fake_at_0_5"] == (g["p_fake"] > 0.5)
        assert (g["family"] in ("gan", "diffusion")) == g["fake"]


@pytest.mark.fast
def test_best_detector_leaves_out_those_needing_noisy_views(tmp_path):
    def save(name, kind, ap, how, **params):
        (tmp_path / name).mkdir()
        (tmp_path / name / "detector.json").write_text(json.dumps(
            {"name": name, "kind": kind, "features": "all", "params": params, "validation": {"ap": ap, "how": how}}))

    assert best_detector(tmp_path)[0] is None and "compare stage has not run" in best_detector(tmp_path)[1]
    save("noise", "noise_sensitivity", 99.0, "cross-fitted: 5 folds")
    assert best_detector(tmp_path)[0] is None and "need noisy views" in best_detector(tmp_path)[1]
    save("fused", "fusion", 100.0, "cross-fitted: 5 folds", members=["knn", "noise"])
    save("probe", "linear_probe", 97.0, "in-sample: early stopping")
    assert best_detector(tmp_path)[0] is None and "no detector has out-of-sample" in best_detector(tmp_path)[1]
    save("knn", "knn", 90.0, "held out")
    save("fused_knn", "fusion", 93.5, "cross-fitted: 5 folds", members=["knn"])
    save("unfitted", "fcnn", None, "held out")
    assert needs_noisy_views("fused", registry.saved(tmp_path)) and not needs_noisy_views("knn", registry.saved(tmp_path))
    # the best out-of-sample AP wins: not the in-sample probe (97), nor the fusions reading noisy views (100)
    name, why = best_detector(tmp_path)
    assert name == "fused_knn" and "93.5" in why
    assert "fused (needs noisy views)" in why and "probe (in-sample: early stopping)" in why


def test_families_match_the_saved_level2_network_across_batches(trained_project):
    """The family, found in a second thread batch after batch by a BatchNorm-folded network,
    is what the level-2 network the stage saved says."""
    rows = manifests.read_manifest(trained_project / "data/preprocessed.csv")
    fakes = rows[(rows.split == "test") & (rows.label == 1)].groupby("test_set").head(4)
    result = predict(trained_project, "--json", "--batch-size", "3", *fakes.path)
    assert result.returncode == 0, result.stderr
    got = [json.loads(line) for line in result.stdout.splitlines()]
    models = trained_project / "models/attribution"
    card = json.loads((models / "model.json").read_text())
    saved = network.build_resnet(card["arch"], card["levels"]["level2"]["outputs"])
    saved.load_state_dict(torch.load(models / "level2.pt", weights_only=True))
    judged = [g for g in got if g["fake"]]
    pixels = torch.stack([torch.from_numpy(preprocess.center_crop(images.load(str(trained_project / g["path"])).rgb, 224))
                          for g in judged]).permute(0, 3, 1, 2)
    expected = network.class_probabilities(saved.eval(), pixels)
    assert judged and all(g["family"] is None for g in got if not g["fake"])
    assert [g["family"] for g in judged] == [card["levels"]["level2"]["classes"][int(p.argmax())] for p in expected]
    np.testing.assert_allclose([g["p_family"] for g in judged], expected.max(axis=1), atol=1e-4)


def test_without_the_family_network(trained_project, tmp_path):
    """A run that stopped before resnet_attribution still says P(fake) with --no-family; without
    the flag it is told which stage is missing, and about the flag. Without the compare stage's
    detectors, predict falls back to the linear head and says so."""
    for name in ["dvc.lock", LINEAR_REPORT, LINEAR_MODEL]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(trained_project / name, tmp_path / name)
    inputs = sorted((trained_project / "data/demo/test").rglob("*.png"))[::40]
    refused = predict(tmp_path, *inputs)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "attribution/model.json is missing" in refused.stderr and "--no-family" in refused.stderr
    without = predict(tmp_path, "--no-family", "--json", *inputs)
    assert without.returncode == 0, without.stderr
    assert "predict: scoring with the linear head (linear_eval's): " in without.stderr
    assert "holds no fitted detector (the compare stage has not run" in without.stderr
    full = predict(trained_project, "--classifier", "linear", "--json", *inputs)
    without, full = ([json.loads(line) for line in r.stdout.splitlines()] for r in (without, full))
    assert len(without) == len(inputs) and any(g["fake"] for g in full) and any(not g["fake"] for g in full)
    for a, b in zip(without, full):
        assert a["family"] is None and a["p_family"] is None
        assert {k: a[k] for k in ["p_fake", "fake", "fake_at_0_5", "threshold"]} == \
            {k: b[k] for k in ["p_fake", "fake", "fake_at_0_5", "threshold"]}


def test_folder_with_a_corrupt_file_csv_output_and_exit_1(trained_project, tmp_path):
    folder = tmp_path / "mixed"
    sources = sorted((trained_project / "data/demo/test").rglob("*.png"))[:3]
    for i, source in enumerate(sources):
        (folder / "sub").mkdir(parents=True, exist_ok=True)
        shutil.copy(source, folder / "sub" / f"img{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("ignored: no image extension")
    result = predict(trained_project, "--csv", folder)
    assert result.returncode == 1
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 4 and set(FIELDS) <= set(rows[0])
    assert [r["status"] for r in rows] == ["unreadable", "ok", "ok", "ok"]
    best = default_detector(trained_project)[0]  # its column, though the first row has none
    assert [r["detector"] for r in rows] == ["", best, best, best] and rows[0]["score"] == "" and rows[1]["score"]
    assert rows[0]["reason"] == "truncated" and "broken.jpg: truncated" in result.stderr
    assert "scored 3 of 4 images in" in result.stderr


@pytest.mark.parametrize("prefix", ["import torch; import tensorflow", "import tensorflow; import keras"])
def test_both_import_orders_work_in_the_command_process(trained_project, prefix):
    image = next((trained_project / "data/demo/test").rglob("*.png"))
    result = predict(trained_project, image, prefix=prefix)
    assert result.returncode == 0, result.stderr
    assert "P(fake)" in result.stdout and image.name in result.stdout


def test_stderr_has_no_tensorflow_log_outside_make(trained_project):
    """Without the Makefile's TF_CPP_MIN_LOG_LEVEL, and with oneDNN on (the default on CPUs with
    AVX-512 or AMX: its notice is printed before that variable is read), stderr holds only the
    command's own line."""
    image = next((trained_project / "data/demo/test").rglob("*.png"))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | {"TF_ENABLE_ONEDNN_OPTS": "1"}
    result = predict(trained_project, "--no-family", image, env=env)
    assert result.returncode == 0, result.stderr
    assert image.name in result.stdout
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("scored 1 of 1 images in "), result.stderr


def test_list_file_and_nearest_neighbour(trained_project, tmp_path):
    images = sorted((trained_project / "data/demo/test").rglob("*.png"))[:2]
    listing = tmp_path / "list.txt"
    listing.write_text("# two images\n" + "\n".join(map(str, images)) + "\n\n")
    result = predict(trained_project, "--classifier", "nn", "--json", "--list", listing)
    assert result.returncode == 0, result.stderr
    got = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(got) == 2 and all(g["p_fake"] in (0.0, 1.0) and "nn_score" in g for g in got)


def test_clear_errors_without_a_trained_run(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    result = predict(tmp_path, tmp_path / "a.png")
    assert result.returncode == 2 and "make repro" in result.stderr and "Traceback" not in result.stderr
    result = predict(tmp_path)
    assert result.returncode == 2 and "no image files" in result.stderr
    result = predict(tmp_path, "--batch-size", "0", tmp_path / "a.png")
    assert result.returncode == 2 and "--batch-size: expected a whole number of at least 1" in result.stderr


def test_real_world_images(trained_project, shared_fixtures):
    """A new user's first run: the 100 ml72 photographs score without error (no accuracy claim)."""
    result = predict(trained_project, "--json", shared_fixtures / "real_world_images" / "ml72")
    assert result.returncode == 0, result.stderr
    got = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(got) == 100 and all(g["status"] == "ok" and 0 <= g["p_fake"] <= 1 for g in got)

"""Keras heads, UnivFD's schedule, the external-head path, and the three stages end to end on
demo-like features (two runs give byte-identical metrics and models)."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from fakedetect.features import feature_files
from fakedetect.evaluation import metrics
from fakedetect.detectors import univfd_head
from fakedetect.params import LinearParams
from fakedetect.stage import UserError
from helpers import PROJECT, run_stage, stage_env

DIM = 24


@pytest.fixture
def keras_heads():
    """The Keras module, imported when a test runs rather than at collection: other test modules
    import torchvision at collection, and TensorFlow loaded before torchvision segfaults (docs/architecture.md "Environment facts worth knowing")."""
    from fakedetect.detectors import keras_heads

    return keras_heads


def demo_like_features(folder, seed=0):
    """A feature folder shaped like the demo's: train, val, a seen and an unseen family, a real-only control."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(DIM) * 2  # features share a mean direction, as CLIP's do
    direction = rng.standard_normal(DIM)
    parts, rows = [], []

    def add(split, test_set, label, n, shift):
        parts.append(base + rng.standard_normal((n, DIM)) + label * shift * direction)
        rows.extend({"split": split, "test_set": test_set, "label": label,
                     "generator": "real" if label == 0 else test_set or "upsample_nearest",
                     "family": "real" if label == 0 else "gan", "category": "", "image_sha256": ""}
                    for _ in range(n))

    for label in (0, 1):
        add("train", "", label, 60, 0.8)
        add("val", "", label, 15, 0.8)
        add("test", "upsample_nearest", label, 20, 0.8)
        add("test", "noise_denoise", label, 20, 0.3)
    add("test", "real_blur", 0, 12, 0.0)
    frame = pd.DataFrame(rows)
    frame.insert(0, "id", np.arange(len(frame)))
    feature_files.save_features(folder, np.concatenate(parts).astype(np.float32), frame)


def params(**linear):
    values = yaml.safe_load((PROJECT / "params.yaml").read_text())
    values["linear"].update(linear)
    return values


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """nn_eval, linear_train, linear_eval on the same features in two folders."""
    runs = []
    for name in ("first", "second"):
        folder = tmp_path_factory.mktemp(name)
        demo_like_features(folder / "data" / "features")
        for i, stage in enumerate(("nn_eval", "linear_train", "linear_eval")):
            result = run_stage(stage, folder, params() if i == 0 else None)
            assert result.returncode == 0, result.stderr[-3000:]
        runs.append(folder)
    return runs


def test_two_runs_give_byte_identical_metrics_and_model(two_runs):
    """The model too: Keras stamps the time of saving into it, which `keras_heads.save` fixes
    (the two runs are seconds apart)."""
    first, second = two_runs
    for name in ("metrics/nn_eval.json", "metrics/linear_eval.json", "reports/nn_eval.json", "reports/linear_eval.json",
                 "dvclive/linear_train/metrics.json", "models/linear.keras",
                 "dvclive/linear_train/plots/metrics/eval/accuracy.tsv", "dvclive/linear_train/plots/metrics/train/loss.tsv",
                 "plots/linear_eval/roc/upsample_nearest.csv", "plots/nn_eval/pr/noise_denoise.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_stage_outputs(two_runs, keras_heads):
    folder = two_runs[0]
    for name in ("nn_eval.json", "linear_eval.json"):
        report = json.loads((folder / "reports" / name).read_text())
        headline = json.loads((folder / "metrics" / name).read_text())
        # The metrics file holds the detector's headline figures of the mean, and nothing else.
        assert headline == {"knn" if name == "nn_eval.json" else "fcnn": {k: report["mean"][k] for k in metrics.HEADLINE}}
        assert set(report["test_sets"]) == {"upsample_nearest", "noise_denoise", "real_blur"}
        seen, control = report["test_sets"]["upsample_nearest"], report["test_sets"]["real_blur"]
        assert seen["acc"] > 80 and seen["ap"] > 80 and seen["acc_calibrated"] is not None
        assert (control["n_real"], control["n_fake"]) == (12, 0)
        assert control["acc"] == control["real_acc"] and control["fake_acc"] is None and control["ap"] is None
        assert report["calibration"] == "validation split" and report["mean"]["n_sets"] == 2
    # One-class sets have no curves; DVCLive's training log has one row per epoch and curve, validation
    # included, and the best epoch's figures in its summary, and only the files dvc.yaml declares.
    assert not (folder / "plots/linear_eval/roc/real_blur.csv").exists()
    log = folder / "dvclive/linear_train"
    curves = {str(f.relative_to(log / "plots/metrics")): pd.read_csv(f, sep="\t") for f in log.rglob("*.tsv")}
    assert sorted(curves) == ["eval/accuracy.tsv", "eval/loss.tsv", "train/accuracy.tsv", "train/learning_rate.tsv",
                              "train/loss.tsv"]
    for name, curve in curves.items():
        assert list(curve.columns) == ["step", name.split("/")[1][:-4]] and list(curve.step) == list(range(7))
    summary = json.loads((log / "metrics.json").read_text())
    val_accuracy = curves["eval/accuracy.tsv"].accuracy
    assert summary["epochs"] == 7 and "step" not in summary
    assert summary["eval"]["accuracy"] == val_accuracy.iloc[-1]
    assert summary["best"]["eval"]["accuracy"] == val_accuracy.max() == val_accuracy[summary["best"]["step"]]
    assert summary["best"]["eval"]["loss"] == curves["eval/loss.tsv"].loss[summary["best"]["step"]]
    assert sorted(str(f.relative_to(log)) for f in log.rglob("*") if f.is_file()) == [
        "metrics.json", *(f"plots/metrics/{name}" for name in sorted(curves))]
    assert (folder / "plots/accuracy_vs_published.png").read_bytes().startswith(b"\x89PNG")
    assert keras_heads.load(folder / "models/linear.keras").name == "fcnn"


def test_epochs_override_and_external_head_through_the_stages(two_runs, tmp_path):
    folder = two_runs[1]
    three_epochs = params()
    three_epochs["linear"]["fcnn"]["epochs"] = 3
    result = run_stage("linear_train", folder, three_epochs)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((folder / "dvclive/linear_train/metrics.json").read_text())["epochs"] == 3
    assert len(pd.read_csv(folder / "dvclive/linear_train/plots/metrics/train/loss.tsv", sep="\t")) == 3

    matrix, rows = feature_files.load_features(folder / "data/features")
    rng = np.random.default_rng(5)
    head = {"weight": torch.tensor(rng.standard_normal((1, DIM)) * 0.1, dtype=torch.float32),
            "bias": torch.tensor([0.3])}
    torch.save(head, tmp_path / "fc_weights.pth")
    result = run_stage("linear_eval", folder, params(external_head=str(tmp_path / "fc_weights.pth")))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((folder / "reports/linear_eval.json").read_text())
    assert report["method"] == "univfd_linear_probe" and report["head"] == str(tmp_path / "fc_weights.pth")
    test = (rows.split == "test") & (rows.test_set == "upsample_nearest")
    logits = matrix[test].astype(np.float64) @ head["weight"].double().numpy()[0] + 0.3
    expected = 100 * ((1 / (1 + np.exp(-logits)) > 0.5) == rows.label[test]).mean()
    assert report["test_sets"]["upsample_nearest"]["acc"] == pytest.approx(expected, abs=1e-4)

    torch.save({"weight": torch.zeros(1, DIM + 1), "bias": torch.zeros(1)}, tmp_path / "wrong.pth")
    result = run_stage("linear_eval", folder, params(external_head=str(tmp_path / "wrong.pth")))
    assert result.returncode == 1 and "linear.external_head" in result.stderr and f"[1, {DIM}]" in result.stderr


@pytest.mark.fast
def test_external_head_loads_a_torch_saved_state_dict(tmp_path):
    weight, bias = torch.randn(1, DIM), torch.randn(1)
    torch.save({"weight": weight, "bias": bias}, tmp_path / "head.pth")
    loaded_weight, loaded_bias = univfd_head.load(tmp_path / "head.pth", DIM)
    x = np.random.default_rng(0).standard_normal((10, DIM)).astype(np.float32)
    expected = torch.sigmoid(torch.from_numpy(x).double() @ weight.double().T + bias.double())[:, 0].numpy()
    np.testing.assert_allclose(univfd_head.predict(loaded_weight, loaded_bias, x), expected, rtol=1e-12)


@pytest.mark.fast
def test_external_head_refuses_pickled_objects_and_other_layouts(tmp_path):
    torch.save({"weight": torch.zeros(1, DIM), "bias": torch.zeros(1), "note": "extra"}, tmp_path / "extra.pth")
    torch.save({"weight": torch.zeros(1, DIM), "bias": torch.zeros(1), "scale": torch.ones(1)}, tmp_path / "three.pth")
    torch.save({"weight": torch.zeros(1, DIM), "bias": pd.Timestamp(0)}, tmp_path / "pickled.pth")
    for name, message in (("extra.pth", "entry 'note' is a str, not a tensor"), ("three.pth", "exactly"),
                          ("pickled.pth", "pickled pandas"), ("missing.pth", "not found")):
        with pytest.raises(UserError, match=message):
            univfd_head.load(tmp_path / name, DIM)


@pytest.mark.fast
def test_heads_have_the_published_architectures(keras_heads):
    p = LinearParams()
    fcnn = keras_heads.build("fcnn", 768, p.fcnn)
    assert [(layer.units, layer.activation.__name__) for layer in fcnn.layers[1:]] == [(768, "relu"), (1, "sigmoid")]
    assert isinstance(fcnn.optimizer, keras_heads.keras.optimizers.Adam) and fcnn.count_params() == 768 * 768 + 768 + 769
    probe = keras_heads.build("linear_probe", 768, p.linear_probe)
    assert probe.count_params() == 769 and isinstance(probe.optimizer, keras_heads.keras.optimizers.AdamW)
    assert float(probe.optimizer.learning_rate) == pytest.approx(1e-4)
    assert (p.fcnn.epochs, p.fcnn.batch_size, p.linear_probe.batch_size) == (7, 30, 256)


@pytest.mark.fast
def test_univfd_schedule_divides_the_learning_rate_then_stops_and_keeps_the_best_weights(keras_heads):
    model = keras_heads.build("linear_probe", 4, LinearParams().linear_probe)
    schedule = keras_heads.UnivfdSchedule("val_accuracy", patience=2, min_delta=0.001, min_lr=1e-6)
    schedule.set_model(model)
    schedule.on_train_begin()
    events = []
    for epoch, accuracy in enumerate([0.6, 0.7, 0.7005, 0.69, 0.71, 0.70, 0.70, 0.70, 0.70]):
        lr = float(model.optimizer.learning_rate)
        model.layers[-1].bias.assign([float(epoch)])  # marks the weights of each epoch
        schedule.on_epoch_end(epoch, {"val_accuracy": accuracy, "learning_rate": lr})
        events.append((epoch, round(float(model.optimizer.learning_rate), 8), model.stop_training))
        if model.stop_training:
            break
    # Epoch 1 is the best until epoch 4 (+0.0005 is no gain); lr 1e-4 drops after epochs 3 and 6, stops at 8.
    assert events[3] == (3, 1e-5, False) and events[6] == (6, 1e-6, False) and events[-1] == (8, 1e-6, True)
    schedule.on_train_end()
    assert float(model.layers[-1].bias[0]) == 4.0


def small_scale_features(seed=0, dim=144):
    """Two classes as the demo's split has them (400 + 400 training rows, 100 + 100 validation rows),
    on a scale far below CLIP's: columns of std 0.02 around 0.05 (CLIP ViT-L/14's are about 0.4)."""
    rng = np.random.default_rng(seed)
    base, direction = rng.standard_normal(dim) * 2, rng.standard_normal(dim)
    labels = np.repeat([0, 1, 0, 1], [400, 400, 100, 100])
    rows = base + rng.standard_normal((len(labels), dim)) + 0.3 * labels[:, None] * direction
    return (0.05 + 0.02 * rows).astype(np.float32), labels


def test_the_shipped_probe_learns_on_features_of_another_scale_deterministically(tmp_path, keras_heads):
    """UnivFD's recipe as shipped (lr 1e-4, batch 256) with its standardisation: it learns where the
    same recipe on the raw features does not (trained twice: the same model), and the saved model
    carries the training rows' statistics."""
    from sklearn.metrics import average_precision_score

    matrix, labels = small_scale_features()
    train, val = slice(0, 800), slice(800, None)
    p = LinearParams(head="linear_probe")
    assert p.linear_probe.standardize and p.linear_probe.learning_rate == 1e-4  # the defaults: params.yaml's
    model, history = keras_heads.train(matrix[train], labels[train], matrix[val], labels[val], p)
    assert average_precision_score(labels[val], keras_heads.predict(model, matrix[val])) > 0.95
    assert history.val_accuracy.max() > 0.85

    raw = LinearParams(head="linear_probe", linear_probe={"standardize": False})
    runs = [keras_heads.train(matrix[train], labels[train], matrix[val], labels[val], raw) for _ in range(2)]
    (unscaled, unscaled_history), (again, again_history) = runs
    assert average_precision_score(labels[val], keras_heads.predict(unscaled, matrix[val])) < 0.75
    pd.testing.assert_frame_equal(unscaled_history, again_history)  # two trainings, one model
    np.testing.assert_array_equal(keras_heads.predict(unscaled, matrix), keras_heads.predict(again, matrix))

    keras_heads.save(model, tmp_path / "head.keras")
    loaded = keras_heads.load(tmp_path / "head.keras")
    assert np.ravel(loaded.get_layer("standardize").mean) == pytest.approx(matrix[train].mean(0), abs=1e-6)
    np.testing.assert_array_equal(keras_heads.predict(loaded, matrix), keras_heads.predict(model, matrix))


def test_a_backbone_builds_after_a_keras_head_is_loaded():
    """compare fits Keras heads, then encodes the format-aligned views through the backbone: importing
    timm and open_clip (torchvision, triton) after Keras must not crash the process."""
    code = ("import torch; from fakedetect.detectors import keras_heads; import timm, open_clip, torchvision; "
            "print('imported')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env=stage_env(TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0 and result.stdout.strip() == "imported", result.stderr[-2000:]

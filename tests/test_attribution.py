"""Hierarchical attribution on tiny images with resnet18: freezing, the levels' data, the
hierarchy's confusion matrix, params errors, determinism and offline weights."""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from fakedetect import vocabulary
from fakedetect.data import manifests
from fakedetect.evaluation import plots
from fakedetect.attribution import cache, data, network, reports, training
from fakedetect.attribution.levels import LEVELS
from fakedetect.params import AttributionParams
from fakedetect.stage import UserError
from helpers import PROJECT, assert_stopped, run_stage, stage_env

SIZE = 32
FAMILY = vocabulary.DEMO_GENERATOR_FAMILY


def _image(rng: np.random.Generator, generator: str) -> np.ndarray:
    """Noise for a real image; a checkerboard (GAN) or a smoothed copy (diffusion) for a fake."""
    x = rng.integers(40, 216, (SIZE, SIZE, 3)).astype(np.float64)
    if FAMILY.get(generator) == "gan":
        x += 30 * (np.indices((SIZE, SIZE)).sum(0) % 2)[:, :, None]
    elif FAMILY.get(generator) == "diffusion":
        x = (x + np.roll(x, 1, 0) + np.roll(x, 1, 1) + np.roll(x, 1, (0, 1))) / 4
    return np.clip(x, 0, 255).astype(np.uint8)


def make_project(root: Path, per_class: int = 6) -> pd.DataFrame:
    """A tiny preprocessed data set: train/val (one GAN generator), three test sets with their
    own reals, categories = source photos; writes data/preprocessed.csv and the images."""
    rng = np.random.default_rng(0)
    rows = []

    def add(split, test_set, generator, category, n):
        for _ in range(n):
            label = int(generator != "real")
            pixels = _image(rng, generator)
            sha = hashlib.sha256(pixels.tobytes()).hexdigest()
            rel = f"data/preprocessed/{split}/{sha}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / rel)
            rows.append(dict(path=f"data/demo/{sha}.png", sha256=sha, split=split, test_set=test_set, label=label,
                             generator=generator, family=FAMILY.get(generator, "real"), category=category,
                             width=SIZE, height=SIZE, mode="RGB", status="ok", reason="", image=rel,
                             image_sha256=sha, augmentation=""))

    for split, categories in (("train", ["a", "b", "c"]), ("val", ["d"])):
        for category in categories:
            add(split, "", "real", category, per_class)
            add(split, "", "upsample_nearest", category, per_class)
    for test_set in FAMILY:
        for category in ["p", "q", "r", "s"]:
            add("test", test_set, "real", category, per_class // 2)
            add("test", test_set, test_set, category, per_class // 2)
    frame = pd.DataFrame(rows)
    frame.insert(0, "id", range(len(frame)))
    frame.to_csv(root / "data/preprocessed.csv", index=False)
    return frame


TINY = {"arch": "resnet18", "weights": "none", "crop_size": None, "batch_size": 8, "lr": 1e-3, "max_epochs": 2,
        "patience": 1, "split": {"test_fraction": 0.5, "val_fraction": 0.34},
        "level1": {"train": {"sets": ["train"]}, "val": {"sets": ["val"]}, "test": {"sets": list(FAMILY)}},
        "level2": {"train": {"sets": list(FAMILY)}, "test": {"sets": list(FAMILY)}},
        "level3": {"enabled": True, "train": {"sets": list(FAMILY)}, "test": {"sets": list(FAMILY)}}}


def tiny_params(**over) -> AttributionParams:
    return AttributionParams.model_validate({**TINY, **over})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    make_project(root)
    return root


def _run_stage(root: Path, attribution: dict, **env) -> subprocess.CompletedProcess:
    return run_stage("resnet_attribution", root, {"attribution": attribution}, timeout=300,
                     env=stage_env(HF_HUB_OFFLINE="1", **env))


def _rows(root: Path) -> pd.DataFrame:
    """The tiny manifest with absolute image paths, for use from this process."""
    rows = manifests.read_manifest(root / "data/preprocessed.csv")
    return rows.assign(image=[str(root / image) for image in rows.image])


# ------------------------------------------------------------------------- levels' data


@pytest.mark.fast
def test_level2_never_sees_a_real_image_and_splits_by_category(tiny):
    levels = data.prepare(_rows(tiny), tiny_params())
    level2 = levels["level2"]
    for part in (level2.train, level2.val, level2.test):
        assert len(part) and (part.label == 1).all() and set(part.family) <= {"gan", "diffusion"}
    train_groups = set(level2.train.category) | set(level2.val.category)
    assert train_groups and set(level2.test.category) and not train_groups & set(level2.test.category)
    assert set(level2.val.category).isdisjoint(level2.train.category)
    assert set(level2.train.target) == {0, 1}
    # The hierarchy is judged only on level-1 test rows of categories no level trained on.
    hierarchy = data.hierarchy_rows(_rows(tiny), levels, tiny_params()).rows
    assert set(hierarchy.category) == set(level2.test.category)
    assert hierarchy.sha256.isin(levels["level1"].test.sha256).all()


@pytest.mark.fast
def test_level2_training_batches_hold_only_fakes(tiny, monkeypatch):
    rows = _rows(tiny)
    p = tiny_params(max_epochs=1)
    level = data.prepare(rows, p)["level2"]
    bank = cache.ImageBank(list(rows.image))
    fake = torch.tensor([bool(label) for label in rows.set_index("image").loc[bank.paths, "label"]])
    seen = []
    crops = cache.Inputs.crops
    monkeypatch.setattr(cache.Inputs, "crops", lambda self, idx, *a: seen.append(idx) or crops(self, idx, *a))
    model, frozen = training.new_model(p, 2, None)
    training.train_level(model, level, cache.make_inputs(model, bank, p, {}), p, frozen)
    assert seen and fake[torch.cat(seen)].all()


@pytest.mark.fast
def test_unknown_generator_or_set_names_the_key(tiny):
    rows = _rows(tiny)
    with pytest.raises(UserError, match=r"attribution\.level2\.train\.generators: unknown generator\(s\) \['stylegan'\]"):
        data.prepare(rows, tiny_params(level2={"train": {"sets": list(FAMILY), "generators": ["stylegan"]},
                                            "test": {"sets": list(FAMILY)}}))
    with pytest.raises(UserError, match=r"attribution\.level1\.test\.sets: unknown set\(s\) \['glide'\]"):
        data.prepare(rows, tiny_params(level1={"train": {"sets": ["train"]}, "test": {"sets": ["glide"]}}))


@pytest.mark.fast
def test_shared_sets_with_one_group_cannot_be_split(tiny):
    rows = _rows(tiny).assign(category="")
    with pytest.raises(UserError, match=r"attribution\.split\.group_by"):
        data.prepare(rows, tiny_params())
    by_image = data.prepare(rows, tiny_params(split={"group_by": "image"}))["level2"]
    assert not set(by_image.train.sha256) & set(by_image.test.sha256)


# ----------------------------------------------------------------------------- model


@pytest.mark.parametrize("reuse", [True, False])
@pytest.mark.fast
def test_frozen_stages_stay_bit_identical(tiny, reuse):
    rows = _rows(tiny)
    p = tiny_params(freeze=["stem", "layer1"], reuse_frozen=reuse, crop_size=None, max_epochs=1)
    level = data.prepare(rows, p)["level1"]
    bank = cache.ImageBank(list(rows.image))
    model, frozen = training.new_model(p, 2, None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    training.train_level(model, level, cache.make_inputs(model, bank, p, {}), p, frozen)
    after = model.state_dict()
    frozen_keys = [k for k in before if k.split(".")[0] in ("conv1", "bn1", "layer1")]
    assert frozen_keys and all(torch.equal(before[k], after[k]) for k in frozen_keys)  # BN statistics too
    assert not torch.equal(before["layer2.0.conv1.weight"], after["layer2.0.conv1.weight"])
    assert not torch.equal(before["fc.weight"], after["fc.weight"])


@pytest.mark.fast
def test_precise_batchnorm_recomputes_the_trainable_statistics_on_whole_images(tiny):
    rows = _rows(tiny)
    p = tiny_params(freeze=["stem", "layer1"])
    bank = cache.ImageBank(list(rows.image))
    model, frozen = training.new_model(p, 2, None)
    inputs = cache.make_inputs(model, bank, p, {})
    idx = torch.arange(len(bank.paths))
    for m in model.modules():  # statistics that have nothing to do with the images
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(5.0)
            m.running_var.fill_(9.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # What one train-mode pass over all the images, in one batch, would set with momentum 1.
    reference = network.build_resnet(p.arch, 1)
    reference.load_state_dict(before)
    for m in reference.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    reference.train()
    with torch.no_grad():
        network.forward_from(reference, inputs.full(idx), inputs.start)
    model.train()
    training.recalibrate_batchnorm(model, inputs, idx, batch_size=len(idx))
    after = model.state_dict()
    trainable = [k for k in after if k.startswith(("layer2", "layer3", "layer4")) and "running_" in k]
    frozen_keys = [k for k in after if k.split(".")[0] in ("conv1", "bn1", "layer1")]
    assert trainable and frozen_keys
    assert all(torch.equal(before[k], after[k]) for k in frozen_keys)
    for k in trainable:
        torch.testing.assert_close(after[k], reference.state_dict()[k])
        assert not torch.equal(before[k], after[k])
    assert all(torch.equal(before[k], after[k]) for k in after if "running_" not in k and "num_batches" not in k)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.momentum == 0.1 for m in bns) and model.training  # as they were


def test_cached_trunk_predicts_as_the_whole_network(tiny):
    rows = _rows(tiny)
    p = tiny_params(freeze=["stem", "layer1", "layer2"])
    bank = cache.ImageBank(list(rows.image))
    model, _ = training.new_model(p, 2, None)
    idx = torch.arange(len(bank.paths))
    cached = training.predict(model, cache.make_inputs(model, bank, p, {}), idx, 16)
    whole = training.predict(model, cache.Inputs(bank), idx, 16)
    torch.testing.assert_close(cached, whole, rtol=0.02, atol=0.02)  # the cache keeps float16 activations


@pytest.mark.fast
def test_local_checkpoint_loads_into_the_trunk(tmp_path):
    torch.manual_seed(1)
    source = network.build_resnet("resnet18", 1000)
    torch.save(source.state_dict(), tmp_path / "trunk.pt")
    trunk = network.load_trunk_weights("resnet18", str(tmp_path / "trunk.pt"))
    model = network.build_resnet("resnet18", 3, trunk)
    assert torch.equal(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert model.fc.out_features == 3
    with pytest.raises(UserError, match="attribution.weights: the weights do not fit resnet50"):
        network.build_resnet("resnet50", 1, trunk)
    with pytest.raises(UserError, match="attribution.weights: 'nowhere.pt' is neither"):
        network.load_trunk_weights("resnet18", "nowhere.pt")


@pytest.mark.fast
def test_imagenet_weights_offline_fail_naming_the_key(tmp_path, monkeypatch):
    torch.hub.set_dir(str(tmp_path))  # an empty hub cache
    try:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(UserError, match=r"attribution\.weights: imagenet weights for resnet50 are not in"):
            network.load_trunk_weights("resnet50", "imagenet")
    finally:
        torch.hub.set_dir(str(Path.home() / ".cache/torch/hub"))


# ----------------------------------------------------------------------------- stage


def test_stage_end_to_end_is_deterministic_and_complete(tiny, tmp_path):
    first = _run_stage(tiny, {**TINY, "freeze": ["stem"]})
    assert first.returncode == 0, first.stderr
    metrics_file = tiny / "reports/attribution.json"
    metrics = json.loads(metrics_file.read_text())
    headline = json.loads((tiny / "metrics/attribution.json").read_text())  # what dvc metrics show prints
    assert set(headline) == {"level1", "level2", "level3", "hierarchy"}
    assert headline["level1"] == {k: metrics["level1"][k] for k in ("acc", "ap")}
    assert headline["hierarchy"] == {k: metrics["hierarchy"][k] for k in ("acc", "balanced_acc")}
    saved = (tiny / "models/attribution/level1.pt").read_bytes()
    level1, level2, level3, hierarchy = (metrics[k] for k in ("level1", "level2", "level3", "hierarchy"))
    for key in ("acc", "real_acc", "fake_acc", "ap", "per_test_set", "per_generator", "confusion"):
        assert key in level1
    assert set(level2["per_family"]) == {"gan", "diffusion"} and "acc" in level2 and "ap_diffusion" in level2
    assert level3["classes"] == sorted(FAMILY)
    assert hierarchy["classes"] == hierarchy["balanced_acc_classes"] == ["real", "gan", "diffusion"]
    assert level1["acc_calibrated"] is not None and level1["calibration"] == "validation split"
    assert all(s["acc_calibrated"] is not None for s in level1["per_test_set"].values())
    assert level1["published_acc"]["notebook"] == 87.0 and level2["published_acc"]["notebook"] == 93.0
    assert level2["published_acc"]["level_up_above"] == 97.0
    # The 3-way matrix counts every hierarchy test image once, as does its DVC confusion CSV.
    expected = len(data.hierarchy_rows(_rows(tiny), data.prepare(_rows(tiny), tiny_params()), tiny_params()).rows)
    assert np.sum(hierarchy["confusion"]) == hierarchy["n"] == expected > 0
    assert len(pd.read_csv(tiny / "plots/attribution/hierarchy_confusion.csv")) == expected
    assert np.sum(level1["confusion"]) == level1["n_real"] + level1["n_fake"]
    # DVCLive's log: per level and epoch, training and validation loss and accuracy; the best epoch's figures.
    log = tiny / "dvclive/resnet_attribution"
    curves = {str(f.relative_to(log / "plots/metrics")) for f in log.rglob("*.tsv")}
    assert curves == {f"{level}/{name}.tsv" for level in ("level1", "level2", "level3")
                      for name in ("train/loss", "train/accuracy", "eval/loss", "eval/accuracy", "eval/balanced_accuracy")}
    summary = json.loads((log / "metrics.json").read_text())
    val_balanced = pd.read_csv(log / "plots/metrics/level2/eval/balanced_accuracy.tsv", sep="\t")
    assert list(val_balanced.step) == list(range(level2["epochs_run"])) == list(range(summary["level2"]["epochs"]))
    best = summary["level2"]["best"]
    assert best["step"] == level2["best_epoch"] - 1 and "step" not in summary
    assert best["eval"]["balanced_accuracy"] == val_balanced.balanced_accuracy.max()
    assert summary["level2"]["eval"]["loss"] == pd.read_csv(log / "plots/metrics/level2/eval/loss.tsv", sep="\t").loss.iloc[-1]
    logged = {f: f.read_bytes() for f in log.rglob("*") if f.is_file()}
    assert len(logged) == len(curves) + 1  # nothing but the curves and the summary
    card = json.loads((tiny / "models/attribution/model.json").read_text())
    state = torch.load(tiny / "models/attribution/level3.pt", weights_only=True)
    model = network.build_resnet(card["arch"], card["levels"]["level3"]["outputs"])
    model.load_state_dict(state)
    # A second run, told to use one OpenMP thread, gives byte-identical metrics and models:
    # attribution.threads fixes the count that the gradients are summed over.
    second = _run_stage(tiny, {**TINY, "freeze": ["stem"]}, OMP_NUM_THREADS="1")
    assert second.returncode == 0, second.stderr
    assert metrics_file.read_text() == json.dumps(metrics, indent=2, sort_keys=True) + "\n"
    assert {f: f.read_bytes() for f in log.rglob("*") if f.is_file()} == logged
    assert (tiny / "models/attribution/level1.pt").read_bytes() == saved


def test_stage_stops_on_an_unknown_generator_naming_the_key(tiny):
    bad = {**TINY, "level2": {"train": {"sets": list(FAMILY), "generators": ["biggan"]},
                              "test": {"sets": list(FAMILY)}}}
    result = _run_stage(tiny, bad)
    assert_stopped(result, "error: attribution.level2.train.generators: unknown generator(s) ['biggan']")


def test_stage_offline_imagenet_fails_naming_the_key(tiny, tmp_path):
    result = _run_stage(tiny, {**TINY, "arch": "resnet50", "weights": "imagenet"}, TORCH_HOME=str(tmp_path))
    assert result.returncode == 1
    assert "error: attribution.weights: imagenet weights for resnet50" in result.stderr


# ------------------------------------------------------------ the real-benchmark path


@pytest.mark.fast
def test_dalle_is_autoregressive_and_level2_families_are_params(tiny):
    assert vocabulary.family_of("dalle") == "autoregressive" and vocabulary.family_of("glide_100_27") == "diffusion"
    rows = _rows(tiny)
    level2 = data.prepare(rows, tiny_params(level2={**TINY["level2"], "families": ["diffusion", "gan"]}))["level2"]
    assert level2.classes == ("diffusion", "gan")
    assert set(level2.train.target[level2.train.family == "gan"]) == {1}
    # A set whose fakes are of a family level 2 does not tell apart is a params mistake, not silence.
    rows.loc[rows.generator == "noise_denoise", "family"] = "autoregressive"
    with pytest.raises(UserError, match=r"attribution\.level2\.train\.sets: \['noise_denoise'\] hold no row "
                                        r"level2 uses.*\['autoregressive'\]"):
        data.prepare(rows, tiny_params())


@pytest.mark.fast
def test_level1_calibrates_its_threshold_on_its_validation_rows():
    def rows(targets, test_set):
        return pd.DataFrame({"target": targets, "test_set": test_set, "generator": "g", "label": targets})

    val_logits = torch.tensor([[1.0], [1.5], [2.5], [3.0]])  # at 0.5 every validation image is called fake
    test, logits = rows([0, 1], "t"), torch.tensor([[1.2], [2.8]])
    report = LEVELS["level1"].report(test, logits, ("real", "fake"), rows([0, 0, 1, 1], ""), val_logits)
    assert report["acc"] == 50.0 and report["acc_calibrated"] == 100.0
    assert report["per_test_set"]["t"]["acc_calibrated"] == 100.0
    assert torch.sigmoid(torch.tensor(1.5)) < report["calibrated_threshold"] < torch.sigmoid(torch.tensor(2.5))
    assert report["calibration"] == "validation split"


@pytest.mark.fast
def test_hierarchy_has_its_own_test_sets_and_names_the_classes_it_averages(tiny):
    rows = _rows(tiny)
    only_diffusion = {**TINY["level1"], "test": {"sets": ["noise_denoise"]}}
    p = tiny_params(level1=only_diffusion)
    by_default = data.hierarchy_rows(rows, data.prepare(rows, p), p)
    assert set(by_default.rows.family) == {"real", "diffusion"}  # level 1's test sets: no GAN image
    report = reports.multiclass_report(by_default.rows, by_default.rows.target.to_numpy(), by_default.classes, "class")
    assert report["balanced_acc_classes"] == ["real", "diffusion"] and report["classes_without_test_rows"] == ["gan"]
    p = tiny_params(level1=only_diffusion, hierarchy={"test": {"sets": list(FAMILY)}})
    levels = data.prepare(rows, p)
    judged = data.hierarchy_rows(rows, levels, p)
    assert judged.classes == ("real", "gan", "diffusion")
    assert set(judged.rows.family) == {"real", "gan", "diffusion"}
    used = pd.concat([d.used_for_training() for d in levels.values()])
    assert not set(judged.rows.sha256) & set(used.sha256)
    assert judged.left_out["seen_in_training"] > 0
    with pytest.raises(UserError, match=r"attribution\.hierarchy\.test\.sets: unknown set\(s\) \['glide'\]"):
        data.hierarchy_rows(rows, levels, tiny_params(hierarchy={"test": {"sets": ["glide"]}}))


@pytest.mark.fast
def test_split_by_image_keeps_every_test_set(tiny, caplog):
    rows = _rows(tiny)
    few = rows[(rows.generator == "transposed_conv")].index[2:]  # this set keeps 2 fakes
    rows = rows.drop(few)
    for seed in range(12):
        level2 = data.prepare(rows, tiny_params(seed=seed, split={"group_by": "image", "test_fraction": 0.34}))["level2"]
        assert set(level2.test.test_set) == set(FAMILY), seed
        assert level2.split_counts()["sets_without_test_rows"] == []
    # A set with a single image cannot be split: it is named, in the counts and in the log.
    rows = rows.drop(rows[rows.generator == "transposed_conv"].index[1:])
    level2 = data.prepare(rows, tiny_params(split={"group_by": "image"}))["level2"]
    assert level2.split_counts()["sets_without_test_rows"] == ["transposed_conv"]
    assert "['transposed_conv'] have no test rows" in caplog.text


def test_training_data_lives_in_scratch_files_and_test_images_stream(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = _rows(tiny)
    p = tiny_params(freeze=["stem", "layer1"])
    bank = cache.ImageBank(list(rows.image))
    model, _ = training.new_model(p, 2, None)
    inputs = cache.make_inputs(model, bank, p, {})
    for records in (bank.pixels, inputs.activations):
        assert isinstance(records, cache.RecordFile)  # not tensors held in memory
        assert records.file.seek(0, 2) == records.record_bytes * len(bank.paths)
    assert inputs.activations.dtype == np.float16 and bank.pixels.dtype == np.uint8
    assert inputs.activations.record_bytes == 64 * (SIZE // 4) ** 2 * 2  # resnet18 layer1: 64 x H/4 x W/4, 2 bytes
    assert list((tmp_path / cache.SCRATCH).iterdir()) == []  # unlinked: nothing left behind
    idx = torch.arange(len(bank.paths))
    streamed = training.predict_images(model, bank.paths, bank.shape, 5)
    torch.testing.assert_close(streamed, training.predict(model, cache.Inputs(bank), idx, 16))


def test_disabled_level3_still_draws_its_declared_plot(tiny, tmp_path):
    result = _run_stage(tiny, {**TINY, "max_epochs": 1, "level3": {**TINY["level3"], "enabled": False}})
    assert result.returncode == 0, result.stderr
    assert json.loads((tiny / "reports/attribution.json").read_text())["level3"] is None
    assert "level3" not in json.loads((tiny / "metrics/attribution.json").read_text())  # headline: levels that ran
    confusion = pd.read_csv(tiny / "plots/attribution/level3_confusion.csv")
    assert list(confusion.columns) == ["actual", "predicted"] and len(confusion) == 1
    assert "attribution.level3.enabled: false" in confusion.actual[0]
    # DVC draws every plot the stage declares from these files, the level-3 one included.
    project = tmp_path / "dvcproject"
    shutil.copytree(tiny / "plots", project / "plots")
    shutil.copytree(tiny / "dvclive", project / "dvclive")  # the training curves
    declared = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]["resnet_attribution"]["do"]["plots"]
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"resnet_attribution": {
        "cmd": "true", "plots": declared}}}))
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=project, check=True)
    shown = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=project,
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    shown = json.loads(shown.stdout)
    assert not shown.get("errors")
    confusions = {f"plots/attribution/{name}_confusion.csv" for name in ("level1", "level2", "level3", "hierarchy")}
    assert confusions | {"plots/attribution.png"} <= set(shown["data"])
    for name, drawn in shown["data"].items():
        assert drawn and (name.endswith(".png") or drawn[0]["content"]["data"]["values"]), name  # none empty
    assert "level3 off" in json.dumps(shown["data"]["plots/attribution/level3_confusion.csv"])


@pytest.mark.fast
def test_confusion_panels_do_not_overlap():
    long = ["a_rather_long_generator_name", "another_long_generator_name", "third_generator_name"]
    fig = plots.confusion_figure({f"level{i}": (long, np.eye(3, dtype=int).tolist()) for i in (1, 2, 3)}, "t")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes]
    for left, right in zip(boxes, boxes[1:]):
        assert left.x1 <= right.x0, (left, right)  # the right panel's y labels start after the left panel

"""Hierarchical attribution on tiny images with resnet18: freezing, the levels' data, the
hierarchy's confusion matrix, params errors, determinism and offline weights."""
import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fakedetect import attribution as A
from fakedetect import layouts
from fakedetect.params import AttributionParams
from fakedetect.stage import UserError
from helpers import assert_stopped, run_stage, stage_env

SIZE = 32
FAMILY = {"upsample_nearest": "gan", "transposed_conv": "gan", "noise_denoise": "diffusion"}


def _image(rng: np.random.Generator, generator: str) -> np.ndarray:
    """Noise for a real image; a checkerboard (GAN) or a smoothed copy (diffusion) for a fake."""
    x = rng.integers(40, 216, (SIZE, SIZE, 3)).astype(np.float64)
    if generator in ("upsample_nearest", "transposed_conv"):
        x += 30 * (np.indices((SIZE, SIZE)).sum(0) % 2)[:, :, None]
    elif generator == "noise_denoise":
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
    rows = layouts.read_manifest(root / "data/preprocessed.csv")
    return rows.assign(image=[str(root / image) for image in rows.image])


# ------------------------------------------------------------------------- levels' data


def test_level2_never_sees_a_real_image_and_splits_by_category(tiny):
    levels = A.prepare(_rows(tiny), tiny_params())
    level2 = levels["level2"]
    for part in (level2.train, level2.val, level2.test):
        assert len(part) and (part.label == 1).all() and set(part.family) <= {"gan", "diffusion"}
    train_groups = set(level2.train.category) | set(level2.val.category)
    assert train_groups and set(level2.test.category) and not train_groups & set(level2.test.category)
    assert set(level2.val.category).isdisjoint(level2.train.category)
    assert set(level2.train.target) == {0, 1}
    # The hierarchy is judged only on level-1 test rows of categories no level trained on.
    hierarchy = A.hierarchy_rows(levels, "category")
    assert set(hierarchy.category) == set(level2.test.category)
    assert hierarchy.sha256.isin(levels["level1"].test.sha256).all()


def test_level2_training_batches_hold_only_fakes(tiny, monkeypatch):
    rows = _rows(tiny)
    p = tiny_params(max_epochs=1)
    data = A.prepare(rows, p)["level2"]
    bank = A.ImageBank(list(rows.image))
    fake = torch.tensor([bool(label) for label in rows.set_index("image").loc[bank.paths, "label"]])
    seen = []
    crops = A.Inputs.crops
    monkeypatch.setattr(A.Inputs, "crops", lambda self, idx, *a: seen.append(idx) or crops(self, idx, *a))
    model, frozen = A.new_model(p, 2, None)
    A.train_level(model, data, A.make_inputs(model, bank, p, {}), p, frozen)
    assert seen and fake[torch.cat(seen)].all()


def test_unknown_generator_or_set_names_the_key(tiny):
    rows = _rows(tiny)
    with pytest.raises(UserError, match=r"attribution\.level2\.train\.generators: unknown generator\(s\) \['stylegan'\]"):
        A.prepare(rows, tiny_params(level2={"train": {"sets": list(FAMILY), "generators": ["stylegan"]},
                                            "test": {"sets": list(FAMILY)}}))
    with pytest.raises(UserError, match=r"attribution\.level1\.test\.sets: unknown set\(s\) \['glide'\]"):
        A.prepare(rows, tiny_params(level1={"train": {"sets": ["train"]}, "test": {"sets": ["glide"]}}))


def test_shared_sets_with_one_group_cannot_be_split(tiny):
    rows = _rows(tiny).assign(category="")
    with pytest.raises(UserError, match=r"attribution\.split\.group_by"):
        A.prepare(rows, tiny_params())
    by_image = A.prepare(rows, tiny_params(split={"group_by": "image"}))["level2"]
    assert not set(by_image.train.sha256) & set(by_image.test.sha256)


# ----------------------------------------------------------------------------- model


@pytest.mark.parametrize("reuse", [True, False])
def test_frozen_stages_stay_bit_identical(tiny, reuse):
    rows = _rows(tiny)
    p = tiny_params(freeze=["stem", "layer1"], reuse_frozen=reuse, crop_size=None, max_epochs=2)
    data = A.prepare(rows, p)["level1"]
    bank = A.ImageBank(list(rows.image))
    model, frozen = A.new_model(p, 2, None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    A.train_level(model, data, A.make_inputs(model, bank, p, {}), p, frozen)
    after = model.state_dict()
    frozen_keys = [k for k in before if k.split(".")[0] in ("conv1", "bn1", "layer1")]
    assert frozen_keys and all(torch.equal(before[k], after[k]) for k in frozen_keys)  # BN statistics too
    assert not torch.equal(before["layer2.0.conv1.weight"], after["layer2.0.conv1.weight"])
    assert not torch.equal(before["fc.weight"], after["fc.weight"])


def test_cached_trunk_predicts_as_the_whole_network(tiny):
    rows = _rows(tiny)
    p = tiny_params(freeze=["stem", "layer1", "layer2"])
    bank = A.ImageBank(list(rows.image))
    model, _ = A.new_model(p, 2, None)
    idx = torch.arange(len(bank.paths))
    cached = A.predict(model, A.make_inputs(model, bank, p, {}), idx, 16)
    whole = A.predict(model, A.Inputs(bank), idx, 16)
    torch.testing.assert_close(cached, whole)


def test_local_checkpoint_loads_into_the_trunk(tmp_path):
    torch.manual_seed(1)
    source = A.build_resnet("resnet18", 1000)
    torch.save(source.state_dict(), tmp_path / "trunk.pt")
    trunk = A.load_trunk_weights("resnet18", str(tmp_path / "trunk.pt"))
    model = A.build_resnet("resnet18", 3, trunk)
    assert torch.equal(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert model.fc.out_features == 3
    with pytest.raises(UserError, match="attribution.weights: the weights do not fit resnet50"):
        A.build_resnet("resnet50", 1, trunk)
    with pytest.raises(UserError, match="attribution.weights: 'nowhere.pt' is neither"):
        A.load_trunk_weights("resnet18", "nowhere.pt")


def test_imagenet_weights_offline_fail_naming_the_key(tmp_path, monkeypatch):
    torch.hub.set_dir(str(tmp_path))  # an empty hub cache
    try:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(UserError, match=r"attribution\.weights: imagenet weights for resnet50 are not in"):
            A.load_trunk_weights("resnet50", "imagenet")
    finally:
        torch.hub.set_dir(str(Path.home() / ".cache/torch/hub"))


# ----------------------------------------------------------------------------- stage


def test_stage_end_to_end_is_deterministic_and_complete(tiny, tmp_path):
    first = _run_stage(tiny, {**TINY, "freeze": ["stem"]})
    assert first.returncode == 0, first.stderr
    metrics_file = tiny / "metrics/attribution.json"
    metrics = json.loads(metrics_file.read_text())
    saved = (tiny / "models/attribution/level1.pt").read_bytes()
    level1, level2, level3, hierarchy = (metrics[k] for k in ("level1", "level2", "level3", "hierarchy"))
    for key in ("acc", "real_acc", "fake_acc", "ap", "per_test_set", "per_generator", "confusion"):
        assert key in level1
    assert set(level2["per_family"]) == {"gan", "diffusion"} and "acc" in level2 and "ap_diffusion" in level2
    assert level3["classes"] == sorted(FAMILY)
    assert hierarchy["classes"] == ["real", "gan", "diffusion"]
    assert level1["published_acc"]["notebook"] == 87.0 and level2["published_acc"]["notebook"] == 93.0
    assert level2["published_acc"]["level_up_above"] == 97.0
    # The 3-way matrix counts every hierarchy test image once, as does its DVC confusion CSV.
    expected = len(A.hierarchy_rows(A.prepare(_rows(tiny), tiny_params()), "category"))
    assert np.sum(hierarchy["confusion"]) == hierarchy["n"] == expected > 0
    assert len(pd.read_csv(tiny / "plots/attribution/hierarchy_confusion.csv")) == expected
    assert np.sum(level1["confusion"]) == level1["n_real"] + level1["n_fake"]
    history = pd.read_csv(tiny / "plots/attribution/level2_training.csv")
    assert list(history.columns[:2]) == ["epoch", "train_loss"] and history.best.sum() == 1
    card = json.loads((tiny / "models/attribution/model.json").read_text())
    state = torch.load(tiny / "models/attribution/level3.pt", weights_only=True)
    model = A.build_resnet(card["arch"], card["levels"]["level3"]["outputs"])
    model.load_state_dict(state)
    # A second run, told to use one OpenMP thread, gives byte-identical metrics and models:
    # attribution.threads fixes the count that the gradients are summed over.
    second = _run_stage(tiny, {**TINY, "freeze": ["stem"]}, OMP_NUM_THREADS="1")
    assert second.returncode == 0, second.stderr
    assert metrics_file.read_text() == json.dumps(metrics, indent=2, sort_keys=True) + "\n"
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

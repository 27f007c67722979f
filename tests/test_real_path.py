"""The real-benchmark path as a new user takes it: `fakedetect profile univfd`, dataset roots pointed at
small copies of every real folder layout, then the stages one after the other.

The tree has images of the real sizes and formats: 256-px ProGAN-like PNGs, 512-px and larger
diffusion-like PNGs, JPEG real pools, and images smaller than 224 px (the test transform pads them).
Only the backbone (a small OpenCLIP model with random weights) and the sizes are made small.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from fakedetect.data import manifests
from fakedetect.evaluation import metrics, published
from fakedetect.profiles import apply_profile
from helpers import PROJECT, assert_stopped, run_stage, stage_env

STAGES = ("ingest", "audit", "preprocess", "extract_clip", "nn_eval", "linear_train", "linear_eval", "resnet_attribution")
# CNNDetection's test sets: set -> its folder below test/ (class subfolders for some, as in the real data)
CNN_TEST_FOLDERS = {"biggan": "biggan", "gaugan": "gaugan", "stargan": "stargan", "progan": "progan/car",
                    "stylegan": "stylegan/car", "cyclegan": "cyclegan/horse"}
# test set -> family of its fakes, as ingest must find them
TEST_SETS = {**{name: "gan" for name in CNN_TEST_FOLDERS}, "ldm_200": "diffusion", "glide_100_27": "diffusion",
             "guided": "diffusion", "dalle": "autoregressive"}
# The profile's attribution sets (GAN vs diffusion; dalle is autoregressive), as profiles/univfd.yaml names them
LEVEL2_SETS = {"biggan", "cyclegan", "gaugan", "stargan", "stylegan", "guided", "ldm_200", "glide_100_27"}


def photo(path, size, seed, **save_args):
    """A smooth random image (a blurred noise field, not white noise: compresses like a photograph)."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((w + 16, h + 16), Image.BICUBIC).crop((0, 0, w, h))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save_args)


def build_tree(root):
    """CNNDetection's training, validation and test folders and UnivFD's diffusion sets, a few images each."""
    seed = iter(range(10_000))
    cnn = root / "CNNDetection"
    for split, n in (("train", 4), ("val", 2)):
        for cls in ("car", "cat"):
            for label in ("0_real", "1_fake"):
                for i in range(n):
                    photo(cnn / split / "progan" / cls / label / f"{i:03d}.png", (256, 256), next(seed))
    for folder in CNN_TEST_FOLDERS.values():
        for label in ("0_real", "1_fake"):
            for i in range(3):
                photo(cnn / "test" / folder / label / f"{i:03d}.png", (256, 256), next(seed))
    diffusion = root / "diffusion_datasets"
    laion_sizes = [(512, 384), (640, 512), (200, 180), (300, 220)]  # two of them smaller than 224 on a side
    for i, size in enumerate(laion_sizes):
        photo(diffusion / "laion/0_real" / f"{i:03d}.jpg", size, next(seed), quality=90)
    for i in range(3):
        photo(diffusion / "imagenet/0_real" / f"n0144_{i}.JPEG", (500, 375), next(seed), quality=90)
    for name, size in (("ldm_200", (512, 512)), ("glide_100_27", (256, 256)), ("guided", (256, 256)),
                       ("dalle", (256, 256))):
        for i in range(3):
            photo(diffusion / name / "1_fake" / f"{i:03d}.png", size if i else (768, 640), next(seed))
    return cnn, diffusion


@pytest.fixture(scope="module")
def real_path(tmp_path_factory):
    """The univfd profile applied to a fresh params.yaml, its roots pointed at the tree, and the stages run."""
    data = tmp_path_factory.mktemp("data")
    cnn, diffusion = build_tree(data)
    project = tmp_path_factory.mktemp("project")
    shutil.copy(PROJECT / "params.yaml", project / "params.yaml")
    apply_profile("univfd", project / "params.yaml", PROJECT / "profiles")
    params = yaml.safe_load((project / "params.yaml").read_text())
    roots = {"wang2020": str(cnn), "cnndetection_test": str(cnn / "test"), "univfd_diffusion": str(diffusion)}
    for entry in params["ingest"]["datasets"]:
        entry["root"] = roots[entry["layout"]]
    # Small and fast, nothing else changed: a small OpenCLIP model with random weights, few epochs.
    params["ingest"]["workers"] = params["preprocess"]["workers"] = 2
    params["extract"].update(model="ViT-B-32", pretrained=None, batch_size=32, loader_workers=0,
                             store=str(project / "store"))
    params["linear"]["linear_probe"]["epochs"] = 3  # the profile's head
    # The profile's attribution (levels, sets, whole 224-px images, split by image) on a small random-weight
    # ResNet: no ImageNet weights offline, and two epochs say whether every level and class is there.
    params["attribution"].update(arch="resnet18", weights="none", max_epochs=2, patience=1, batch_size=8)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = stage_env(HF_HUB_OFFLINE="1")
    logs = {}
    for stage in STAGES:
        result = run_stage(stage, project, env=env, timeout=300)
        assert result.returncode == 0, f"{stage}\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr
        logs[stage] = result.stderr
    return project, logs


def read(project, name):
    return json.loads((project / name).read_text())


def test_ingest_finds_every_test_set_with_its_family(real_path):
    project, logs = real_path
    manifest = manifests.read_manifest(project / "data/manifest.csv")
    assert set(manifest.status) == {"ok"}
    test = manifest[manifest.split == "test"]
    assert set(test.test_set) == set(TEST_SETS)
    fakes = test[test.label == 1].drop_duplicates("test_set").set_index("test_set").family.to_dict()
    assert fakes == TEST_SETS
    assert set(test[test.test_set == "stylegan"].category) == {"car"} and set(test[test.test_set == "biggan"].category) == {""}
    guided_reals = test[(test.test_set == "guided") & (test.label == 0)].path
    assert len(guided_reals) == 3 and guided_reals.str.contains("imagenet/0_real").all()
    assert manifest.groupby("split").size().to_dict() == {"train": 16, "val": 8, "test": 36 + 3 * 7 + 6}
    # The 4 LAION reals serve 3 sets (ldm_200, glide_100_27, dalle): one file each, one row per set.
    ingest = read(project, "metrics/ingest.json")
    assert ingest["files"]["read"] == 16 + 8 + 36 + 4 + 3 + 12
    assert read(project, "reports/ingest.json")["rows"]["total"] == 16 + 8 + 36 + 3 * 4 + 3 + 12
    assert ingest["test_sets"] == 10 and ingest["ignored_image_folders"] == 0
    assert "files read" in logs["ingest"] and "manifest rows" in logs["ingest"]


def test_the_audit_flags_the_sets_whose_reals_are_jpeg_and_the_card_is_checked(real_path):
    """In the tree, as in the real data, UnivFD's diffusion sets pair JPEG reals (LAION, ImageNet) with
    PNG fakes, while CNNDetection's sets are PNG on both sides."""
    project, logs = real_path
    audit = read(project, "reports/audit.json")["sets"]
    diffusion = {"ldm_200", "glide_100_27", "guided", "dalle"}
    assert {name for name, entry in audit.items() if entry["flagged"]} == {f"test/{name}" for name in diffusion}
    for name in set(CNN_TEST_FOLDERS) | {"train", "val"}:
        entry = audit[name if name in ("train", "val") else f"test/{name}"]
        assert entry["shortcut_auc"] == 0.5 and not entry["flagged"]
    assert audit["test/guided"]["in_words"].startswith("reals: JPEG q90 at 500x375; fakes: PNG at")
    assert read(project, "metrics/audit.json") == {"flagged": 4, "shortcut_auc": 1.0}
    assert "test/guided: FLAGGED" in logs["audit"]
    cards = read(project, "reports/ingest.json")["benchmark_cards"]
    assert cards["guided"]["agrees"] is False and cards["guided"]["found"] == {"real": 3, "fake": 3}
    assert cards["progan"]["agrees"] is None  # on the card, its counts unknown
    assert "test set guided differs from the card" in logs["ingest"]


def test_test_images_of_every_size_become_224_px_crops(real_path):
    project, _ = real_path
    rows = manifests.read_manifest(project / "data/preprocessed.csv")
    small = rows[(rows.width < 224) | (rows.height < 224)]
    assert len(small) == 3 * 2  # two small LAION reals, in three sets
    for row in rows[rows.split == "test"].drop_duplicates("sha256").itertuples():
        assert Image.open(project / row.image).size == (224, 224), row.path
    padded = np.asarray(Image.open(project / small[small.height == 180].iloc[0].image))
    assert (padded[:22] == 0).all() and (padded[:, :12] == 0).all()  # zero padding around a 200x180 image
    assert padded[22:202, 12:212].std() > 0


def test_published_numbers_and_deltas_beside_each_set(real_path):
    project, _ = real_path
    report = read(project, "reports/linear_eval.json")
    assert report["method"] == "univfd_linear_probe" and report["head"] == "linear_probe"
    assert set(report["test_sets"]) == set(TEST_SETS)
    for name, row in report["test_sets"].items():
        acc, ap = published.DETECTION["univfd_linear_probe"][name]
        assert (row["published_acc"], row["published_ap"]) == (acc, ap)
        assert row["delta_acc"] == pytest.approx(row["acc"] - acc, abs=1e-3)
        assert row["delta_ap"] == pytest.approx(row["ap"] - ap, abs=1e-3)
        assert (row["n_real"], row["n_fake"]) == ((4 if name in ("ldm_200", "glide_100_27", "dalle") else 3), 3)
    assert "published_acc" not in report["mean"]  # 10 of UnivFD's 19 sets: no published mean to compare with
    # The DVC metrics files: the detector's headline figures of the mean, nothing else (per set: reports/).
    for name, detector in (("linear_eval", "linear_probe"), ("nn_eval", "knn")):
        headline = read(project, f"metrics/{name}.json")
        assert list(headline) == [detector] and set(headline[detector]) == set(metrics.HEADLINE)
    nn = read(project, "reports/nn_eval.json")
    assert nn["method"] == "notebook_nn" and not any("published_acc" in row for row in nn["test_sets"].values())


def test_the_dataset_top_folder_as_test_root_stops(real_path, tmp_path):
    """The new user's mistake: the CNNDetection root given where its test/ folder belongs."""
    project, _ = real_path
    params = yaml.safe_load((project / "params.yaml").read_text())
    entry = params["ingest"]["datasets"][2]
    assert entry["layout"] == "cnndetection_test"
    entry["root"] = str(Path(entry["root"]).parent)
    result = run_stage("ingest", tmp_path, params, env=stage_env())
    assert_stopped(result, "ingest.datasets.2.root", "folders named like splits", "test/, train/, val/")
    assert not (tmp_path / "data/manifest.csv").exists()


def test_attribution_levels_and_hierarchy_classes(real_path):
    """The profile's attribution: level 1 on DALL-E with its LAION reals, tested on Glide; level 2 GAN vs
    diffusion on the fakes of every GAN and diffusion set, each set split by image and kept on the test
    side; level 3 off; the 3-way hierarchy judged on real, GAN and diffusion images no level saw."""
    project, logs = real_path
    report = read(project, "reports/attribution.json")
    assert report["model"]["arch"] == "resnet18" and report["model"]["frozen"] == ["stem", "layer1"]
    assert set(read(project, "metrics/attribution.json")) == {"level1", "level2", "hierarchy"}
    level1, level2, hierarchy = report["level1"], report["level2"], report["hierarchy"]
    assert level1["classes"] == ["real", "fake"] and set(level1["per_test_set"]) == {"glide_100_27"}
    assert level1["published_acc"] == published.ATTRIBUTION["level1"]  # the notebook 87, Level Up above 97
    assert level1["n_fake"] > 0 and "acc_calibrated" in level1
    # Level 2: the families, every selected set on the test side (a by-image split stratified by set)
    assert level2["classes"] == ["gan", "diffusion"] and level2["classes_without_test_rows"] == []
    assert set(level2["per_test_set"]) == LEVEL2_SETS and level2["data"]["sets_without_test_rows"] == []
    assert set(level2["per_generator"]) == LEVEL2_SETS  # dalle (autoregressive) is neither class
    # The hierarchy: all three classes, each with test rows, and its balanced accuracy says it averaged them
    assert hierarchy["classes"] == hierarchy["balanced_acc_classes"] == ["real", "gan", "diffusion"]
    assert hierarchy["classes_without_test_rows"] == []
    assert all(hierarchy["per_class"][c]["n"] > 0 for c in hierarchy["classes"]), hierarchy["per_class"]
    assert hierarchy["rows_left_out"]["seen_in_training"] > 0  # the rows the levels trained or validated on
    # Level 3 is off: its declared plot is a valid one-cell placeholder that says so, not a missing file
    placeholder = (project / "plots/attribution/level3_confusion.csv").read_text()
    assert "level3 off (attribution.level3.enabled: false)" in placeholder
    for name in ("level1", "level2", "hierarchy"):
        assert (project / f"plots/attribution/{name}_confusion.csv").read_text().count("\n") > 1
    assert "Traceback" not in logs["resnet_attribution"]

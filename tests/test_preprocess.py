"""Preprocessing protocols: determinism, the seeded blur half, JPEG q80 tables, UnivFD's centre crop."""
import hashlib
import io

import cv2
import numpy as np
import pytest
import torchvision.transforms as T
from PIL import Image

from fakedetect.data import file_facts, images, manifests, preprocess
from fakedetect.params import PreprocessParams
from helpers import run_stage, small_demo_params, write_image

def tree_digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """ingest + preprocess of a small demo, twice in two folders."""
    runs = []
    for name in ("first", "second"):
        folder = tmp_path_factory.mktemp(name)
        for stage in ("ingest", "preprocess"):
            result = run_stage(stage, folder, small_demo_params() if stage == "ingest" else None)
            assert result.returncode == 0, result.stderr
        runs.append(folder)
    return runs


def test_two_runs_are_byte_identical(demo_run):
    first, second = (tree_digest(run / "data") for run in demo_run)
    assert first == second
    assert any(name.startswith("preprocessed/train/") and name.endswith(".jpg") for name in first)


def test_blur_hits_exactly_the_seeded_half(demo_run):
    rows = manifests.read_manifest(demo_run[0] / "data/preprocessed.csv")
    train = rows[rows.split == "train"]
    blurred = train.augmentation.str.contains("blur")
    chosen = preprocess.blurred_half(train.sha256, seed=0, fraction=0.5)
    assert list(blurred) == [sha in chosen for sha in train.sha256]
    assert blurred.sum() == len(train) // 2
    assert preprocess.blurred_half(train.sha256, seed=1, fraction=0.5) != chosen
    assert not rows[rows.split != "train"].augmentation.str.contains("blur").any()


def test_outputs_are_the_protocol_pixels(demo_run):
    folder = demo_run[0]
    rows = manifests.read_manifest(folder / "data/preprocessed.csv")
    for row in rows[rows.split == "train"].head(6).itertuples():
        source = images.load(str(folder / row.path)).rgb
        jpeg = preprocess.jpeg_encode(cv2.resize(source, (224, 224), interpolation=cv2.INTER_LINEAR), 80)
        stored = (folder / row.image).read_bytes()
        if row.image.endswith(".jpg"):
            assert stored == jpeg
            tables = Image.open(io.BytesIO(stored)).quantization
            assert list(tables[0]) == list(file_facts.ijg_table(80))
        else:
            expected = cv2.GaussianBlur(images.decode(jpeg)[0], (5, 5), 0)
            np.testing.assert_array_equal(images.decode(stored)[0], expected)


@pytest.mark.parametrize("size", [(224, 224), (300, 257), (257, 300), (100, 60), (225, 500), (301, 223)])
@pytest.mark.fast
def test_center_crop_equals_torchvision(size):
    rgb = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    expected = np.asarray(T.CenterCrop(224)(Image.fromarray(rgb)))
    np.testing.assert_array_equal(preprocess.center_crop(rgb, 224), expected)


@pytest.mark.fast
def test_blur_jpeg_protocol_is_seeded_and_follows_its_ranges():
    params = PreprocessParams(train_protocol="blur_jpeg")
    rgb = np.random.default_rng(1).integers(0, 256, (256, 320, 3), dtype=np.uint8)
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(300)]
    outputs = [preprocess.blur_jpeg(rgb, params, sha) for sha in shas]
    assert outputs[0] == preprocess.blur_jpeg(rgb, params, shas[0])
    steps = [aug for _, _, aug in outputs]
    blurred = [s for s in steps if "blur" in s]
    jpegs = [s for s in steps if "jpeg_" in s]
    assert 0.4 < len(blurred) / 300 < 0.6 and 0.4 < len(jpegs) / 300 < 0.6
    sigmas = [float(s.split("blur")[1].split("+")[0]) for s in blurred]
    qualities = [int(s.split("jpeg_")[1][3:].split("+")[0]) for s in jpegs]
    assert 0 <= min(sigmas) and max(sigmas) <= 3 and 30 <= min(qualities) and max(qualities) <= 100
    assert {s.split("jpeg_")[1][:3] for s in jpegs} == {"cv2", "pil"}
    for data, ext, _ in outputs[:5]:
        assert ext == ".png" and images.decode(data)[0].shape == (224, 224, 3)


def test_test_images_are_not_resized_or_recompressed(tmp_path):
    write_image(tmp_path / "in/set/0_real/big.jpg", size=(400, 300), format="JPEG", quality=95)
    params = small_demo_params(datasets=[{"layout": "generic", "root": "in/set"}]) | {"images": ["datasets"]}
    assert run_stage("ingest", tmp_path, params).returncode == 0
    assert run_stage("preprocess", tmp_path).returncode == 0
    row = manifests.read_manifest(tmp_path / "data/preprocessed.csv").iloc[0]
    source = images.load(str(tmp_path / row.path)).rgb
    assert row.image.endswith(".png")
    np.testing.assert_array_equal(images.load(str(tmp_path / row.image)).rgb, source[38:262, 88:312])


def test_real_world_images_go_through(tmp_path, shared_fixtures):
    """The ml72 photos (up to 4024 px, some with EXIF) are ingested and preprocessed without a skip."""
    ml72 = shared_fixtures / "real_world_images" / "ml72"
    (tmp_path / "ml72").mkdir()
    (tmp_path / "ml72/0_real").symlink_to(ml72 / "real")
    (tmp_path / "ml72/1_fake").symlink_to(ml72 / "ai")
    params = small_demo_params(datasets=[{"layout": "generic", "root": "ml72"}]) | {"images": ["datasets"]}
    assert run_stage("ingest", tmp_path, params).returncode == 0
    result = run_stage("preprocess", tmp_path)
    assert result.returncode == 0, result.stderr
    rows = manifests.read_manifest(tmp_path / "data/preprocessed.csv")
    assert len(rows) == 100 and set(rows.status) == {"ok"}
    assert (rows.label == 1).sum() == 50 and rows.width.max() >= 4000


@pytest.mark.fast
def test_the_training_format_alignment_is_off_by_default_and_re_encodes_training_images_only(tmp_path):
    """align_train_jpeg: every training image (real and fake alike) re-encoded at one JPEG quality
    before the training protocol; validation and test images untouched."""
    assert PreprocessParams().align_train_jpeg is None
    path = str(write_image(tmp_path / "a.png", size=(260, 240), seed=3))
    decoded = images.load(path)
    aligned = PreprocessParams(align_train_jpeg=96)
    out = {}
    for name, params, split in (("off", PreprocessParams(), "train"), ("on", aligned, "train"),
                                ("test", aligned, "test")):
        image, _, augmentation, reason = preprocess._process(
            (path, decoded.sha256, split, str(tmp_path / name), False), params)
        assert reason == ""
        out[name] = (open(image, "rb").read(), augmentation)
    assert out["off"][1] == "resize224+jpeg80" and out["on"][1] == "align_jpeg96+resize224+jpeg80"
    expected, _, _ = preprocess.notebook(preprocess.jpeg_decode(preprocess.jpeg_encode(decoded.rgb, 96, "pil")),
                                         aligned, decoded.sha256, False)
    assert out["on"][0] == expected != out["off"][0]
    assert out["test"][1] == "center_crop224"

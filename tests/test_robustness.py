"""robustness: perturbed pixels bit for bit against a plain reference of UnivFD's procedure, each
(image, perturbation) encoded once, the clean point equal to nn_eval and linear_eval, bad params."""
import io
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage import data as skdata
from torchvision import transforms

from fakedetect.features import backbones, feature_files, local_engine
from fakedetect.data import images
from fakedetect.data import perturbations
from fakedetect.evaluation import metrics, robustness
from fakedetect.features.feature_store import FeatureStore
from fakedetect.params import ExtractParams, ParamsError, Perturbation, load_params
from helpers import SMALL_ROBUSTNESS_GRID, assert_stopped, run_stage, small_demo_params

GRID = [Perturbation(jpeg=50), Perturbation(blur=2), Perturbation(resize=0.5), Perturbation(blur=2, jpeg=50),
        Perturbation(jpeg=30, resize=0.7, blur=1.5), Perturbation(resize=1.3)]


def reference(path, blur=None, resize=None, jpeg=None) -> np.ndarray:
    """UnivFD's validate.py as the issue describes it, written plainly: the original decoded as ingest
    decodes it; blur each channel of the uint8 array in place; resize (Pillow, bicubic); save as JPEG
    with PIL in memory and open again; then torchvision's CenterCrop(224)."""
    img = Image.fromarray(images.load(str(path)).rgb)
    if blur:
        a = np.array(img)
        for c in range(3):
            gaussian_filter(a[:, :, c], output=a[:, :, c], sigma=blur)
        img = Image.fromarray(a)
    if resize:
        img = img.resize((max(1, round(img.width * resize)), max(1, round(img.height * resize))), Image.BICUBIC)
    if jpeg:
        buffer = io.BytesIO()
        img.save(buffer, format="jpeg", quality=jpeg)
        img = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return np.asarray(transforms.CenterCrop(224)(img))


def source_images(folder) -> list:
    """Odd sizes (one smaller than the crop), gray, RGBA with transparency, and a JPEG source."""
    photo = skdata.astronaut()
    folder.mkdir(parents=True, exist_ok=True)
    made = {"odd.png": Image.fromarray(photo[:301, :257]), "small.png": Image.fromarray(photo[100:250, 50:147]),
            "gray.png": Image.fromarray(skdata.camera()[:240, :333]), "photo.jpg": Image.fromarray(photo[:256, :300])}
    rgba = np.dstack([photo[:230, :250], np.tile(np.linspace(0, 255, 250, dtype=np.uint8), (230, 1))])
    made["rgba.png"] = Image.fromarray(rgba, "RGBA")
    for name, image in made.items():
        image.save(folder / name)
    return [folder / name for name in made]


@pytest.mark.fast
def test_perturbed_pixels_equal_the_univfd_reference_bit_for_bit(tmp_path):
    paths = source_images(tmp_path)
    items = [local_engine.Item(str(path), images.load(str(path)).sha256, point) for path in paths for point in GRID]
    for item in items:  # what the engines' loaders hand the encoder's transform
        pixels, reason, _ = local_engine.read(item, 224, images.Limits())
        expected = reference(item.path, **item.perturbation.model_dump(exclude_none=True))
        assert reason == "" and pixels.shape == (1, 224, 224, 3) and pixels.dtype == np.uint8  # one centre crop
        np.testing.assert_array_equal(pixels[0], expected, err_msg=f"{item.path} {perturbations.name(item.perturbation)}")
    assert len({perturbations.key(item.sha256, item.perturbation) for item in items}) == len(items)  # one key per pair


@pytest.mark.fast
def test_grid_point_names_and_fixed_order():
    assert [perturbations.name(p) for p in GRID] == ["jpeg50", "blur2", "resize0_5", "blur2+jpeg50",
                                               "blur1_5+resize0_7+jpeg30", "resize1_3"]
    assert perturbations.name(None) == "clean"
    rgb = skdata.astronaut()[:240, :240]
    # The order is fixed whatever the order of the keys: blur before JPEG.
    both = perturbations.apply(rgb, Perturbation.model_validate({"jpeg": 50, "blur": 2}))
    np.testing.assert_array_equal(both, perturbations.apply(perturbations.apply(rgb, Perturbation(blur=2)), Perturbation(jpeg=50)))
    assert not np.array_equal(both, perturbations.apply(perturbations.apply(rgb, Perturbation(jpeg=50)), Perturbation(blur=2)))


def counting(backbone) -> list[int]:
    """Record the number of images of each encoder call."""
    calls, encode = [], backbone.encode
    backbone.encode = lambda batch: calls.append(len(batch)) or encode(batch)
    return calls


@pytest.mark.fast
def test_each_image_and_perturbation_is_encoded_once(tmp_path):
    paths = source_images(tmp_path / "img")
    (tmp_path / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rows = [{"path": str(p), "sha256": images.load(str(p)).sha256, "test_set": "a", "label": i % 2}
            for i, p in enumerate(paths)]
    rows.append({**rows[0], "test_set": "b"})  # one image in two test sets: encoded once per perturbation
    rows.append({"path": str(tmp_path / "img" / "broken.png"), "sha256": "0" * 64, "test_set": "a", "label": 1})
    chosen = pd.DataFrame(rows)
    backbone = backbones.create(ExtractParams(layers=["block0"], batch_size=4, loader_workers=0))
    calls = counting(backbone)
    store = FeatureStore(tmp_path / "store", backbone.identity)
    grid = [Perturbation(jpeg=90), Perturbation(blur=1)]

    first = robustness.perturbed_features(chosen, grid, backbone, store, 4, 1)
    assert sum(calls) == first.computed == len(paths) * len(grid)
    assert first.kept.tolist() == [True] * (len(rows) - 1) + [False]
    assert first.skipped == [{"path": str(tmp_path / "img" / "broken.png"), "reason": "not_an_image"}]
    assert first.features["jpeg90"].shape == (len(rows) - 1, 16)
    np.testing.assert_array_equal(first.features["jpeg90"][len(paths)], first.features["jpeg90"][0])
    alone = backbone.encode(backbone.transform(reference(paths[2], jpeg=90))[None])[0]  # the stored features
    np.testing.assert_allclose(first.features["jpeg90"][2], alone, rtol=1e-4, atol=1e-5)  # are those pixels'

    calls.clear()
    added = robustness.perturbed_features(chosen, grid + [Perturbation(jpeg=70)], backbone, store, 4, 0)
    assert sum(calls) == added.computed == len(paths)  # only the new quality's images
    np.testing.assert_array_equal(added.features["blur1"], first.features["blur1"])

    calls.clear()
    again = robustness.perturbed_features(chosen, grid + [Perturbation(jpeg=70)], backbone, store, 4, 0)
    assert calls == [] and again.computed == 0


def test_clean_point_equals_nn_eval_and_linear_eval(trained_project):
    """With every test image (the small demo has fewer than max_per_class), the clean point's metrics
    are nn_eval's and linear_eval's; the perturbed points hold the same sets and counts."""
    report = json.loads((trained_project / "reports/robustness.json").read_text())
    headline = json.loads((trained_project / "metrics/robustness.json").read_text())  # what dvc metrics show prints
    points = report["methods"]["knn"]["perturbations"]
    grid = [p["mean"] for name, p in points.items() if name != "clean"]
    assert headline["knn"] == {k: round(float(np.mean([m[k] for m in grid])), 4) for k in metrics.HEADLINE}
    assert "detector_knn" not in report["methods"]  # compare's knn is nn_eval's: scored once
    for method, evaluated in (("knn", "nn_eval"), ("fcnn", "linear_eval")):
        ours = report["methods"][method]
        theirs = json.loads((trained_project / f"reports/{evaluated}.json").read_text())
        assert ours["calibrated_threshold"] == theirs["calibrated_threshold"]
        assert ours["operating_thresholds"] == theirs["operating_thresholds"]
        clean = ours["perturbations"]["clean"]["test_sets"]
        assert set(clean) == {"upsample_nearest", "transposed_conv", "noise_denoise"}
        for name, row in clean.items():
            assert {k: row[k] for k in metrics.METRICS} == {k: theirs["test_sets"][name][k] for k in metrics.METRICS}
            assert theirs["test_sets"][name]["tpr_at_fpr5"] is not None
        assert theirs["test_sets"]["real_blur"]["tpr_at_fpr1"] is None  # a real-only control
        assert len(ours["perturbations"]) == 1 + len(SMALL_ROBUSTNESS_GRID)  # clean, then the grid
        for point in ours["perturbations"].values():
            assert {name: (r["n_real"], r["n_fake"]) for name, r in point["test_sets"].items()} == \
                   {name: (r["n_real"], r["n_fake"]) for name, r in clean.items()}
    jpeg = pd.read_csv(trained_project / "plots/robustness/nn_jpeg.csv", dtype={"jpeg_quality": str})
    assert jpeg.jpeg_quality.unique().tolist() == ["clean", "90", "50"]
    assert set(jpeg.test_set) == {"upsample_nearest", "transposed_conv", "noise_denoise", "mean"}
    assert (trained_project / "plots/robustness.png").stat().st_size > 10_000


@pytest.mark.parametrize("robustness_params, key, expected", [
    ({"perturbations": [{"sharpen": 2}]}, "robustness.perturbations.0.sharpen", "unknown key"),
    ({"perturbations": [{"jpeg": 0}]}, "robustness.perturbations.0.jpeg", "greater than or equal to 1"),
    ({"perturbations": [{"jpeg": 101}]}, "robustness.perturbations.0.jpeg", "less than or equal to 100"),
    ({"perturbations": [{"blur": -1}]}, "robustness.perturbations.0.blur", "greater than or equal to 0"),
    ({"perturbations": [{"resize": 0}]}, "robustness.perturbations.0.resize", "greater than 0"),
    ({"perturbations": [{}]}, "robustness.perturbations.0", "at least one of blur, resize, size, jpeg, noise"),
    ({"perturbations": [{"jpeg": 50}, {"jpeg": 50}]}, "robustness", "perturbations.1 repeats"),
])
@pytest.mark.fast
def test_bad_grid_names_its_key(tmp_path, robustness_params, key, expected):
    params = small_demo_params()
    params["robustness"].update(robustness_params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError) as caught:
        load_params(tmp_path / "params.yaml")
    assert f"{key}:" in str(caught.value) and expected in str(caught.value)


@pytest.mark.parametrize("robustness_params, key, expected", [
    ({"perturbations": [{"blur": -1}]}, "robustness.perturbations.0.blur", "greater than or equal to 0"),
    ({"test_sets": ["a", "stylegan9"]}, "robustness.test_sets", "no test set 'stylegan9'"),
])
def test_the_stage_stops_before_any_work(tmp_path, robustness_params, key, expected):
    rows = pd.DataFrame({"id": [0, 1, 2], "split": ["train", "test", "test"], "test_set": ["", "a", "a"],
                         "label": [0, 0, 1], "generator": "g", "family": "gan", "category": "c", "image": "x",
                         "image_sha256": "0"})
    feature_files.save_features(tmp_path / "data" / "features", np.zeros((3, 4), np.float32), rows)
    rows.assign(path="missing.png", sha256="0").to_csv(tmp_path / "data" / "manifest.csv", index=False)
    params = small_demo_params()
    params["robustness"].update(robustness_params)
    params["extract"]["store"] = str(tmp_path / "store")
    result = run_stage("robustness", tmp_path, params)
    assert_stopped(result, f"{key}:", expected)
    assert not (tmp_path / "store").exists() and not (tmp_path / "metrics").exists()

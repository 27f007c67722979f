"""Test-time crop policies (center, tiles, resize): their store keys, their crops, one stored row
per (image, policy), the same features from both engines, nothing encoded twice."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fakedetect.data import images, preprocess
from fakedetect.data import perturbations
from fakedetect.features import backbones, crops, engines, extract, local_engine
from fakedetect.features.feature_store import FeatureStore
from fakedetect.params import CropPolicy, ExtractParams, Perturbation
from test_extract import counting

SHA = "ab" * 32
TILES = CropPolicy(policy="tiles", tiles=4)
SEEDED = CropPolicy(policy="tiles", tiles=3, placement="seeded", seed=5)
RESIZE = CropPolicy(policy="resize")


def write_rows(folder: Path, sizes: list[tuple[int, int]], split: str = "test") -> pd.DataFrame:
    """Original PNG images of the given (width, height), smooth random colour fields, and their
    preprocessed centre crops, as extract's rows (path, sha256: the original; image, image_sha256: the crop)."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, size in enumerate(sizes):
        rgb = np.asarray(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC))
        original, cropped = preprocess.png_encode(rgb), preprocess.png_encode(preprocess.center_crop(rgb, 224))
        (folder / f"{i}.png").write_bytes(original)
        (folder / f"{i}_crop.png").write_bytes(cropped)
        rows.append({"path": str(folder / f"{i}.png"), "sha256": images.sha256_of(original), "split": split,
                     "image": str(folder / f"{i}_crop.png"), "image_sha256": images.sha256_of(cropped)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def backbone():
    return backbones.create(ExtractParams(layers=["block0"], batch_size=4, loader_workers=0))


@pytest.mark.fast
def test_each_policy_has_its_own_key_and_center_keeps_todays():
    assert crops.key(SHA, None) == crops.key(SHA, CropPolicy()) == SHA
    point = Perturbation(jpeg=50)
    assert crops.key(perturbations.key(SHA, point), None) == perturbations.key(SHA, point)
    keys = {crops.key(SHA, policy) for policy in
            (CropPolicy(), TILES, CropPolicy(policy="tiles", tiles=5), SEEDED, SEEDED.model_copy(update={"seed": 6}),
             RESIZE)}
    assert len(keys) == 6
    assert crops.key(SHA, RESIZE) == crops.key(SHA, RESIZE.model_copy(update={"tiles": 9}))  # fields it ignores
    assert crops.key(SHA, TILES) == crops.key(SHA, TILES.model_copy(update={"seed": 9}))  # grid: no seed


@pytest.mark.fast
def test_the_crops_of_each_policy():
    rgb = np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    np.testing.assert_array_equal(crops.crops(rgb, 224, None, SHA)[0], preprocess.center_crop(rgb, 224))
    assert crops.tile_positions(300, 500, 224, TILES, SHA) == [(0, 13), (0, 263), (76, 13), (76, 263)]
    tiles = crops.crops(rgb, 224, TILES, SHA)
    assert tiles.shape == (4, 224, 224, 3)
    np.testing.assert_array_equal(tiles[3], rgb[76:300, 263:487])
    seeded = crops.tile_positions(300, 500, 224, SEEDED, SHA)
    assert seeded == crops.tile_positions(300, 500, 224, SEEDED, SHA)  # the same image: the same crops
    assert seeded != crops.tile_positions(300, 500, 224, SEEDED, "cd" * 32)
    assert all(0 <= top <= 76 and 0 <= left <= 276 for top, left in seeded)
    resized = crops.crops(rgb, 224, RESIZE, SHA)
    np.testing.assert_array_equal(resized[0], np.asarray(Image.fromarray(rgb).resize((224, 224), Image.BICUBIC)))
    small = crops.crops(rgb[:100, :250], 224, TILES, SHA)  # a short side: zero-padded as the centre crop pads
    assert small.shape == (4, 224, 224, 3) and not small[:, :62].any()


@pytest.mark.fast
def test_tiles_encode_k_crops_and_store_their_mean_as_one_row(tmp_path, backbone):
    rows = write_rows(tmp_path / "img", [(500, 300), (260, 240), (224, 224)])
    store = FeatureStore(tmp_path / "store", backbone.identity)
    calls = counting(backbone)
    try:
        matrix, run = extract.extract(rows, backbone, store, 4, 0, test_crop=TILES)
    finally:
        del backbone.encode  # the fixture's backbone, unwrapped
    assert calls == [3 * 4] and run.computed == 3 and matrix.shape[0] == 3
    keys = [crops.key(sha, TILES) for sha in rows.sha256]
    stored = store.load(set(keys) | set(rows.sha256) | set(rows.image_sha256))
    assert set(stored) == set(keys)  # one row per (image, policy), none under the centre-crop keys
    for i, path in enumerate(rows.path):  # the original image, at its native resolution
        rgb = images.load(path).rgb
        expected = local_engine.encode_pixels(backbone, crops.crops(rgb, 224, TILES, rows.sha256[i])).mean(0)
        np.testing.assert_allclose(matrix[i], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(stored[keys[i]], matrix[i])
    again, run = extract.extract(rows, backbone, store, 4, 0, test_crop=TILES)
    assert run.computed == 0 and np.array_equal(again, matrix)  # a second request encodes nothing


@pytest.mark.fast
def test_policies_apply_to_test_rows_only_and_center_is_todays_features(tmp_path, backbone):
    rows = pd.concat([write_rows(tmp_path / "a", [(320, 256)], "train"), write_rows(tmp_path / "b", [(256, 320)])])
    rows = rows.reset_index(drop=True)
    store = FeatureStore(tmp_path / "store", backbone.identity)
    center, _ = extract.extract(rows, backbone, store, 4, 0)
    keys, items = extract.row_items(rows, RESIZE)
    assert keys[0] == rows.image_sha256[0] and items[keys[0]] == engines.Item(rows.image[0], rows.image_sha256[0])
    assert keys[1] == crops.key(rows.sha256[1], RESIZE) and items[keys[1]] == engines.Item(rows.path[1], rows.sha256[1],
                                                                                            crop=RESIZE)
    resized, run = extract.extract(rows, backbone, store, 4, 0, test_crop=RESIZE)
    assert run.computed == 1  # only the test image under resize: the train row is the stored centre crop
    np.testing.assert_array_equal(resized[0], center[0])
    whole = np.asarray(Image.open(rows.path[1]).resize((224, 224), Image.BICUBIC))[None]
    np.testing.assert_allclose(resized[1], local_engine.encode_pixels(backbone, whole)[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(resized[1], center[1])


def test_the_ray_engine_gives_the_local_features_for_a_policy(tmp_path):
    ray = pytest.importorskip("ray")
    from test_engines import small_params

    rows = write_rows(tmp_path / "img", [(500, 300), (260, 240), (300, 300)])
    params = small_params()
    local = backbones.create(params.model_copy(update={"engine": "local"}))
    expected, _ = extract.extract(rows, local, FeatureStore(tmp_path / "local", local.identity), 2, 0, test_crop=SEEDED)
    from fakedetect.features.ray_engine import RayEngine, connect

    assert connect(params.ray)
    try:
        engine = RayEngine(params)
        matrix, run = extract.extract(rows, engine, FeatureStore(tmp_path / "ray", engine.identity), 2, 0,
                                      test_crop=SEEDED)
    finally:
        ray.shutdown()
    assert run.computed == 3
    np.testing.assert_array_equal(matrix, expected)

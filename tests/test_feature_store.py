"""The feature store: incremental runs compute only new images, a new model computes everything,
corrupt or half-written shards are never trusted. Encoder calls are counted."""
import pytest
import pandas as pd
import numpy as np

from fakedetect.features import backbones, extract
from fakedetect.features.feature_store import FeatureStore
from test_extract import counting, demo_params, write_images


def run(rows, params, store_root):
    """Extract with a fresh backbone; return (matrix, number of images the encoder saw)."""
    backbone = backbones.create(params)
    calls = counting(backbone)
    matrix, result = extract.extract(rows, backbone, FeatureStore(store_root, backbone.identity), 8, 0)
    assert sum(calls) == result.computed
    return matrix, sum(calls)


def test_adding_5_percent_computes_only_those(tmp_path):
    rows = write_images(tmp_path / "img", 40, seed=0)
    first, encoded = run(rows, demo_params(), tmp_path / "store")
    assert encoded == 40
    grown = pd.concat([rows, write_images(tmp_path / "img", 2, seed=1, start=40)], ignore_index=True)
    second, encoded = run(grown, demo_params(), tmp_path / "store")
    assert encoded == 2
    np.testing.assert_array_equal(second[:40], first)
    assert second.shape == (42, first.shape[1])


def test_changing_the_model_computes_everything_again(tmp_path):
    rows = write_images(tmp_path / "img", 12, seed=0)
    _, encoded = run(rows, demo_params(), tmp_path / "store")
    assert encoded == 12
    _, encoded = run(rows, demo_params(layers=["block1"]), tmp_path / "store")
    assert encoded == 12
    _, encoded = run(rows, demo_params(pretrained=None), tmp_path / "store")
    assert encoded == 12
    _, encoded = run(rows, demo_params(), tmp_path / "store")  # the first model's features are still there
    assert encoded == 0
    assert len(list((tmp_path / "store").iterdir())) == 3


def test_corrupt_shard_is_detected_and_recomputed(tmp_path):
    rows = write_images(tmp_path / "img", 16, seed=0)
    first, _ = run(rows, demo_params(), tmp_path / "store")
    shards = sorted((tmp_path / "store").glob("*/[0-9a-f]*.npz"))
    assert len(shards) == 2  # 16 images, batches of 8
    with np.load(shards[0]) as z:
        keys, vectors = z["keys"], z["features"]
    np.savez(shards[0], keys=keys, features=vectors + np.float32(1e-3))  # same name, altered values
    data = shards[1].read_bytes()
    shards[1].write_bytes(data[: len(data) // 2])  # truncated
    second, encoded = run(rows, demo_params(), tmp_path / "store")
    assert encoded == 16
    np.testing.assert_array_equal(second, first)
    _, encoded = run(rows, demo_params(), tmp_path / "store")
    assert encoded == 0


def test_half_written_temporary_file_is_never_read(tmp_path):
    """A run killed while writing leaves `.<name>.npz.<random>.tmp`: never taken for a shard."""
    rows = write_images(tmp_path / "img", 8, seed=0)
    first, _ = run(rows, demo_params(), tmp_path / "store")
    (shard,) = (tmp_path / "store").glob("*/[0-9a-f]*.npz")
    data = shard.read_bytes()
    shard.unlink()
    (shard.parent / f".{shard.name}.k2x9.tmp").write_bytes(data[:100])
    second, encoded = run(rows, demo_params(), tmp_path / "store")
    assert encoded == 8
    np.testing.assert_array_equal(second, first)


@pytest.mark.fast
def test_store_returns_only_wanted_keys_and_verifies_names(tmp_path):
    store = FeatureStore(tmp_path, {"model": "m"})
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    path = store.add(["a" * 64, "b" * 64, "c" * 64], vectors)
    found = store.load({"a" * 64, "c" * 64, "d" * 64})
    assert sorted(found) == ["a" * 64, "c" * 64]
    np.testing.assert_array_equal(found["c" * 64], vectors[2])
    other = FeatureStore(tmp_path, {"model": "other"})  # a shard copied into another model's folder
    path.rename(other.folder / path.name)
    assert other.load({"a" * 64}) == {}
    assert not (other.folder / path.name).exists()

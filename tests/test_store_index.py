"""The feature store's index: reads only what is wanted, is rebuilt when lost or stale, survives a
process killed mid-update and two writers at once, detects a corrupt shard at read time; float16
rows; verify and compact."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fakedetect.features import shard_files, store_admin, store_index
from fakedetect.features.feature_store import FeatureStore

PROJECT = Path(__file__).resolve().parents[1]
IDENTITY = {"model": "m"}


def key(i: int) -> str:
    return f"{i:064x}"


def fill(store: FeatureStore, shards: int, rows: int, seed: int = 0, first: int = 0) -> dict[str, np.ndarray]:
    """Add `shards` shards of `rows` rows; return every stored row by key."""
    rng = np.random.default_rng(seed)
    stored = {}
    for s in range(shards):
        keys = [key(first + s * rows + r) for r in range(rows)]
        vectors = rng.standard_normal((rows, 8), dtype=np.float32)
        store.add(keys, vectors)
        stored.update(zip(keys, store.as_stored(vectors)))
    return stored


def assert_same(found: dict, expected: dict) -> None:
    assert sorted(found) == sorted(expected)
    for k, vector in expected.items():
        assert found[k].dtype == np.float32
        np.testing.assert_array_equal(found[k], vector)


@pytest.fixture
def opened(monkeypatch):
    """Counts the shards whose rows a load reads, and the shards read whole (verified)."""
    counts = {"rows": [], "whole": []}
    view, read = shard_files.features_view, shard_files.read
    monkeypatch.setattr(shard_files, "features_view", lambda path: counts["rows"].append(path.name) or view(path))
    monkeypatch.setattr(shard_files, "read", lambda path, *a: counts["whole"].append(path.name) or read(path, *a))
    return counts


@pytest.mark.fast
def test_a_load_opens_only_the_shards_holding_wanted_keys(tmp_path, opened):
    store = FeatureStore(tmp_path, IDENTITY)
    stored = fill(store, shards=10, rows=20)
    wanted = {key(3), key(5), key(45)}  # in shards 0 and 2
    found = FeatureStore(tmp_path, IDENTITY).load(wanted | {key(10_000)})
    assert_same(found, {k: stored[k] for k in wanted})
    assert sorted(opened["rows"]) == sorted({p.name for p in store.folder.glob("*.npz")
                                             if key(3) in shard_files.read(p, store.model_id, "float32")[0].astype(str)
                                             or key(45) in shard_files.read(p, store.model_id, "float32")[0].astype(str)})
    opened["rows"].clear(), opened["whole"].clear()
    FeatureStore(tmp_path, IDENTITY).load({key(199)})
    assert len(opened["rows"]) == 1 and opened["whole"] == []  # nothing re-hashed: the index is up to date


@pytest.mark.fast
@pytest.mark.parametrize("damage", ["deleted", "garbage", "stale"])
def test_a_lost_or_stale_index_is_rebuilt_from_the_shards(tmp_path, damage):
    store = FeatureStore(tmp_path, IDENTITY)
    stored = fill(store, shards=4, rows=10)
    store.index.close()
    index = store.folder / store_index.INDEX
    if damage == "deleted":
        index.unlink()
    elif damage == "garbage":
        index.write_bytes(b"not a database" * 100)
    else:  # a shard removed behind the index's back: its keys must not be found, the others must
        gone = sorted(store.folder.glob("*.npz"))[0]
        lost = set(shard_files.read(gone, store.model_id, "float32")[0].astype(str))
        gone.unlink()
        stored = {k: v for k, v in stored.items() if k not in lost}
    assert_same(FeatureStore(tmp_path, IDENTITY).load({key(i) for i in range(40)}), stored)
    assert FeatureStore(tmp_path, IDENTITY).index.counts() == (len(stored), len(stored) // 10)


@pytest.mark.fast
def test_an_old_store_without_an_index_gets_one(tmp_path):
    """A store written before the index (shards only) is indexed on first use, nothing recomputed."""
    store = FeatureStore(tmp_path, IDENTITY)
    keys = np.asarray([key(i) for i in range(5)], dtype="S64")
    vectors = np.arange(40, dtype=np.float32).reshape(5, 8)
    name = shard_files.digest(store.model_id, keys, vectors)
    with open(store.folder / f"{name}.npz", "wb") as f:  # as the code before the index wrote it
        np.savez(f, keys=keys, features=vectors)
    found = store.load({key(1), key(4)})
    np.testing.assert_array_equal(found[key(4)], vectors[4])
    assert (store.folder / store_index.INDEX).is_file()


@pytest.mark.fast
def test_a_corrupt_shard_is_detected_at_read_time_and_its_images_recomputed(tmp_path, caplog):
    store = FeatureStore(tmp_path, IDENTITY)
    stored = fill(store, shards=3, rows=10)
    path = store.folder / store.index.lookup({key(12)}).popitem()[0]
    stat = path.stat()
    view = shard_files.features_view(path)
    at = view.offset + view.nbytes - 4
    del view
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF  # flipped bits in the last row's features: same size,
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: the index still lists it as it was
    found = FeatureStore(tmp_path, IDENTITY).load({key(i) for i in range(30)})
    assert sorted(found) == sorted(k for k in stored if not 10 <= int(k, 16) < 20)  # its rows are not trusted
    assert not path.exists() and "is corrupt" in caplog.text
    assert [p.name for p in store.folder.iterdir() if p.name.startswith(".") and p.name != ".lock"] == []
    fill(store, shards=1, rows=10, first=10, seed=5)  # recomputed
    assert len(FeatureStore(tmp_path, IDENTITY).load({key(i) for i in range(30)})) == 30


KILLED = """
import sys, numpy as np
from fakedetect.features.feature_store import FeatureStore
store = FeatureStore(sys.argv[1], {"model": "m"})
store.add([f"{i:064x}" for i in range(100, 150)], np.ones((50, 8), np.float32))
"""


@pytest.mark.parametrize("point", ["after-shard", "mid-index"])
def test_a_process_killed_during_an_index_update_leaves_a_readable_store(tmp_path, point, opened):
    store = FeatureStore(tmp_path, IDENTITY)
    stored = fill(store, shards=2, rows=10)
    store.index.close()
    env = {**os.environ, "PYTHONPATH": str(PROJECT), store_index.KILL_ENV: point}
    killed = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path)], env=env, capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    opened["whole"].clear()
    found = FeatureStore(tmp_path, IDENTITY).load({key(i) for i in range(150)})
    # The killed run's shard was whole: it is verified and indexed, its images not recomputed.
    assert_same(found, stored | {key(i): np.ones(8, np.float32) for i in range(100, 150)})
    assert len(opened["whole"]) == 1
    assert not (store.folder / (store_index.INDEX + "-journal")).exists()


WRITER = """
import sys, numpy as np
from fakedetect.features.feature_store import FeatureStore
first = int(sys.argv[2])
store = FeatureStore(sys.argv[1], {"model": "m"})
for s in range(20):
    keys = [f"{i:064x}" for i in range(first + s * 5, first + s * 5 + 10)]  # overlapping shards
    store.add(keys, np.stack([np.full(8, int(k, 16), np.float32) for k in keys]))
"""


def test_two_concurrent_writers_leave_a_consistent_index(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(first)], env=env,
                                stderr=subprocess.PIPE, text=True) for first in (0, 50)]
    for writer in writers:
        assert writer.wait(timeout=300) == 0, writer.stderr.read()
    store = FeatureStore(tmp_path, IDENTITY)
    found = store.load({key(i) for i in range(200)})
    assert sorted(found) == [key(i) for i in range(155)]
    for k, vector in found.items():
        assert (vector == int(k, 16)).all()
    assert store.index.counts() == (155, 30)  # 10 shards both wrote, identical: one file each
    checked = store_admin.verify(store)
    assert checked.corrupt == [] and checked.reindexed == [] and checked.images == 155


@pytest.mark.fast
def test_float16_rows_come_back_float32_and_never_mix_with_float32(tmp_path):
    vectors = np.random.default_rng(0).standard_normal((6, 8), dtype=np.float32)
    keys = [key(i) for i in range(6)]
    half = FeatureStore(tmp_path, IDENTITY, "float16")
    path = half.add(keys, vectors)
    assert np.load(path)["features"].dtype == np.float16
    found = FeatureStore(tmp_path, IDENTITY, "float16").load(set(keys))
    for i, k in enumerate(keys):
        assert found[k].dtype == np.float32
        np.testing.assert_array_equal(found[k], vectors[i].astype(np.float16).astype(np.float32))
    full = FeatureStore(tmp_path, IDENTITY)
    assert full.folder != half.folder and full.load(set(keys)) == {}
    (full.folder / path.name).write_bytes(path.read_bytes())  # a float16 shard in the float32 folder: refused
    assert full.load(set(keys)) == {} and not (full.folder / path.name).exists()
    assert FeatureStore.open(half.folder).dtype == "float16"
    with pytest.raises(ValueError, match="store_dtype"):
        FeatureStore(tmp_path, IDENTITY, "int8")


@pytest.mark.fast
def test_compact_rewrites_small_shards_and_keeps_every_row(tmp_path):
    store = FeatureStore(tmp_path, IDENTITY)
    stored = fill(store, shards=12, rows=5)
    done = store_admin.compact(store, rows_per_shard=20)
    assert (done.before, done.after, done.images) == (12, 3, 60)
    assert len(list(store.folder.glob("*.npz"))) == 3
    assert_same(FeatureStore(tmp_path, IDENTITY).load(set(stored)), stored)
    checked = store_admin.verify(FeatureStore(tmp_path, IDENTITY))
    assert (checked.shards, checked.images, checked.corrupt) == (3, 60, [])


def test_store_verify_command_reports_a_corrupt_shard(tmp_path):
    store = FeatureStore(tmp_path, IDENTITY)
    fill(store, shards=3, rows=4)
    run = lambda *args: subprocess.run([sys.executable, "-m", "fakedetect", "store", *args, "--store", str(tmp_path)],  # noqa: E731
                                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(PROJECT)})
    clean = run("verify")
    assert clean.returncode == 0 and "3 shards, 12 images; 0 corrupt" in clean.stdout, clean.stderr
    victim = sorted(store.folder.glob("*.npz"))[1]
    victim.write_bytes(victim.read_bytes()[:-50])
    bad = run("verify")
    assert bad.returncode == 1 and "1 corrupt" in bad.stdout and not victim.exists()
    compacted = run("compact", "--rows-per-shard", "100")
    assert compacted.returncode == 0 and "2 -> 1 shards, 8 images" in compacted.stdout, compacted.stderr


def test_a_float16_run_and_its_rerun_give_the_same_features(tmp_path):
    """Freshly encoded rows are rounded as the store keeps them: a re-run from the store matches."""
    from fakedetect.features import backbones, extract
    from test_extract import demo_params, write_images

    rows = write_images(tmp_path / "img", 6, seed=0)
    backbone = backbones.create(demo_params())
    first, run = extract.extract(rows, backbone, FeatureStore(tmp_path / "store", backbone.identity, "float16"), 4, 0)
    assert run.computed == 6 and first.dtype == np.float32
    again, run = extract.extract(rows, backbone, FeatureStore(tmp_path / "store", backbone.identity, "float16"), 4, 0)
    assert run.reused == 6
    np.testing.assert_array_equal(again, first)
    full, _ = extract.extract(rows, backbone, FeatureStore(tmp_path / "store", backbone.identity), 4, 0)
    np.testing.assert_array_equal(first, full.astype(np.float16).astype(np.float32))

"""The feature store shared by every workspace: where it lives, concurrent extract processes on
one store (parallel `dvc queue` workers), and the `fakedetect store` command."""
import pytest
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from fakedetect.features import backbones, extract, feature_store, shard_files
from fakedetect.features.feature_store import STORE_ENV, FeatureStore, store_root, user_cache_dir
from helpers import PROJECT
from test_extract import demo_params, write_images

ROUNDS = 10
# One extract process: waits at a barrier (files) before each round so that both start at once,
# extracts its rows into that round's store, saves the features and how many images it encoded.
WORKER = """
import json, sys, time
from pathlib import Path
import numpy as np, pandas as pd
from fakedetect.features import backbones, extract
from fakedetect.features.feature_store import FeatureStore
from fakedetect.params import ExtractParams

rows_csv, stores, out, me, other, rounds = sys.argv[1:]
rows, out = pd.read_csv(rows_csv), Path(out)
backbone = backbones.create(ExtractParams(layers=["block0"], batch_size=4, loader_workers=0))
computed = []
for r in range(int(rounds)):
    (out / f"ready.{r}.{me}").touch()
    while not (out / f"ready.{r}.{other}").exists():
        time.sleep(0.002)
    matrix, run = extract.extract(rows, backbone, FeatureStore(f"{stores}/{r}", backbone.identity), 4, 0)
    np.save(out / f"{me}.{r}.npy", matrix)
    computed.append(run.computed)
(out / f"{me}.json").write_text(json.dumps(computed))
"""


@pytest.mark.fast
def test_store_location_param_then_environment_then_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "from_env"))
    assert store_root("/data/features") == Path("/data/features")
    assert store_root(None) == tmp_path / "from_env"
    monkeypatch.delenv(STORE_ENV)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert store_root(None) == tmp_path / "xdg" / "fakedetect" / "features"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/xdg")  # the XDG spec: a relative path is ignored
    assert user_cache_dir() == Path.home() / ".cache" / "fakedetect"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert user_cache_dir() == Path.home() / "Library" / "Caches" / "fakedetect"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert user_cache_dir() == tmp_path / "local" / "fakedetect"


@pytest.mark.fast
def test_tests_never_use_the_user_cache():
    assert store_root(None) != user_cache_dir() / "features"


def test_concurrent_extract_processes_share_a_store_safely(tmp_path):
    """Two processes at once on one store, ROUNDS times (a fresh store each round), with 6 images
    in common and 6 of their own: every shard verifies, nothing is left half-written, every image
    is encoded once per round, and each process gets exactly a single-process run's features."""
    images = write_images(tmp_path / "img", 18, seed=3)
    parts = {"a": images.iloc[:12], "b": images.iloc[6:]}
    backbone = backbones.create(demo_params(batch_size=4))
    single = {me: extract.extract(rows, backbone, FeatureStore(tmp_path / f"single_{me}", backbone.identity), 4, 0)[0]
              for me, rows in parts.items()}
    out = tmp_path / "out"
    out.mkdir()
    for me, rows in parts.items():
        rows.to_csv(tmp_path / f"{me}.csv", index=False)
    env = {**__import__("os").environ, "PYTHONPATH": str(PROJECT)}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / f"{me}.csv"), str(tmp_path / "stores"),
                                 str(out), me, other, str(ROUNDS)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for me, other in (("a", "b"), ("b", "a"))]
    for worker in workers:
        output, _ = worker.communicate(timeout=600)
        assert worker.returncode == 0, output[-3000:]
    computed = {me: json.loads((out / f"{me}.json").read_text()) for me in parts}
    for r in range(ROUNDS):
        assert computed["a"][r] + computed["b"][r] == 18  # the 6 shared images encoded once, by either
        for me in parts:
            np.testing.assert_array_equal(np.load(out / f"{me}.{r}.npy"), single[me])
        (folder,) = (tmp_path / "stores" / str(r)).iterdir()
        store = FeatureStore(folder.parent, backbone.identity)
        shards = sorted(folder.glob(shard_files.SHARDS))
        keys = [key for shard in shards for key in store._read_shard(shard)[0]]  # None if it did not verify
        assert len(keys) == len(set(keys)) == 18
        assert [f.name for f in folder.iterdir() if f.name.startswith(".") and f.name != ".lock"] == []


@pytest.mark.fast
def test_a_shard_another_process_rewrote_is_not_deleted(tmp_path):
    """A process that found a shard corrupt deletes what it judged, not the good copy another
    process renamed onto the same name meanwhile."""
    store = FeatureStore(tmp_path, {"model": "m"})
    good = store.add(["a" * 64], np.ones((1, 3), np.float32))
    data = good.read_bytes()
    good.write_bytes(data[:40])  # truncated
    assert store.load({"a" * 64}) == {} and not good.exists()

    good.write_bytes(data[:40])
    original = store._read_shard

    def rewritten_meanwhile(path, name=None):  # another process renames the good copy into place
        found = original(path, name)
        if path == good and found is None:
            good.with_name(".other.tmp").write_bytes(data)
            good.with_name(".other.tmp").replace(good)
        return found

    store._read_shard = rewritten_meanwhile
    assert store.load({"a" * 64}) == {}  # this process recomputes them
    assert good.read_bytes() == data
    assert list(FeatureStore(tmp_path, {"model": "m"}).load({"a" * 64})) == ["a" * 64]


def fakedetect(*args, cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fakedetect", *args], cwd=cwd, capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(PROJECT), **env}, timeout=120)


def test_store_command_lists_and_removes_a_backbone(tmp_path):
    rows = write_images(tmp_path / "img", 5, seed=0)
    root = tmp_path / "store"
    for overrides in ({}, {"layers": ["block1"]}):
        backbone = backbones.create(demo_params(**overrides))
        extract.extract(rows.iloc[:5 if overrides else 3], backbone, FeatureStore(root, backbone.identity), 2, 0)
    listed = fakedetect("store", cwd=tmp_path, FAKEDETECT_STORE=str(root))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == f"feature store: {root}" and lines[1].split() == ["id", "model", "weights", "variant", "images",
                                                                          "size"]
    by_id = {line.split()[0]: line for line in lines[2:4]}
    entries = {e.model_id: e for e in feature_store.entries(root)}
    assert set(by_id) == set(entries) and lines[4].startswith("2 backbone(s)")
    for model_id, entry in entries.items():
        assert "efficientnet_lite0" in by_id[model_id] and "sha256" in by_id[model_id]
        assert f" {entry.images} " in by_id[model_id]
    assert sorted(e.images for e in entries.values()) == [3, 5]
    small = next(e for e in entries.values() if e.images == 3)

    removed = fakedetect("store", "--remove", small.model_id, "--store", str(root), cwd=tmp_path)
    assert removed.returncode == 0 and f"removed {small.model_id}" in removed.stdout
    assert [e.images for e in feature_store.entries(root)] == [5]
    unknown = fakedetect("store", "--remove", "0123", "--store", str(root), cwd=tmp_path)
    assert unknown.returncode == 2 and "holds no backbone '0123'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_store_command_reads_the_projects_extract_store(tmp_path):
    (tmp_path / "params.yaml").write_text("extract:\n  store: my_store\n")
    listed = fakedetect("store", cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout.startswith(f"feature store: {tmp_path / 'my_store'}\n")
    (tmp_path / "params.yaml").write_text("extract:\n  stor: my_store\n")
    wrong = fakedetect("store", cwd=tmp_path)
    assert wrong.returncode == 2 and "extract.stor: unknown key" in wrong.stderr

"""The ray engine against the local one: bit-identical features, resume and incremental runs
through the feature store, a killed encoder actor, batch scoring, an unreachable cluster.
A local Ray instance with 2 CPUs and a small random-weight backbone keep it quick."""
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import ray

from fakedetect.features import backbones, extract
from fakedetect.features.feature_store import FeatureStore
from fakedetect.features import ray_engine
from fakedetect.features.ray_engine import RayEngine
from fakedetect.params import ExtractParams, RayParams, load_params
from helpers import assert_stopped, free_port, run_stage, stage_env
from test_extract import project, write_images

N_IMAGES, BATCH = 24, 2


@pytest.fixture(scope="module")
def local_ray():
    """A Ray instance on this machine, started as the engine starts one, shared by this module's tests
    and shut down after them."""
    assert ray_engine.connect(RayParams())
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}  # loopback only (conftest.py)
    yield
    ray.shutdown()


def small_params(**ray_params) -> ExtractParams:
    """EfficientNet-Lite0 with seeded random weights up to block 1: small and offline."""
    return ExtractParams(model="efficientnet_lite0", pretrained=None, layers=["block1"], batch_size=BATCH,
                         loader_workers=0, engine="ray", ray=ray_params or {"actors": 1, "cpus_per_actor": 1})


def local_features(rows, params, store_root):
    backbone = backbones.create(params)
    matrix, _ = extract.extract(rows, backbone, FeatureStore(store_root, backbone.identity), BATCH, 0)
    return matrix


def shard_keys(folder) -> dict:
    shards = {}
    for path in folder.glob("[0-9a-f]*.npz"):
        with np.load(path) as z:
            shards[path] = set(z["keys"].astype(str))
    return shards


def test_ray_features_equal_local_and_resume_from_the_store(tmp_path, local_ray):
    rows = write_images(tmp_path / "img", N_IMAGES, seed=3)
    params = small_params()
    expected = local_features(rows, params, tmp_path / "local")
    engine = RayEngine(params)
    assert engine.identity == backbones.create(params).identity  # one store entry whatever the engine
    store = FeatureStore(tmp_path / "store", engine.identity)
    matrix, run = extract.extract(rows, engine, store, BATCH, 0)
    assert matrix.dtype == np.float32 and (run.computed, run.reused) == (N_IMAGES, 0)
    np.testing.assert_array_equal(matrix, expected)
    assert len(shard_keys(store.folder)) == N_IMAGES // BATCH  # one shard per batch, as the local engine writes

    again, run = extract.extract(rows, engine, store, BATCH, 0)
    assert (run.computed, run.reused) == (0, N_IMAGES)
    np.testing.assert_array_equal(again, expected)

    deleted = sorted(shard_keys(store.folder).items())[:3]
    for path, _ in deleted:
        path.unlink()
    before = set(shard_keys(store.folder))
    resumed, run = extract.extract(rows, engine, store, BATCH, 0)
    assert (run.computed, run.reused) == (3 * BATCH, N_IMAGES - 3 * BATCH)
    recomputed = set().union(*(keys for path, keys in shard_keys(store.folder).items() if path not in before))
    assert recomputed == set().union(*(keys for _, keys in deleted))
    np.testing.assert_array_equal(resumed, expected)
    engine.close()
    assert ray.is_initialized()  # the engine leaves alone a Ray it did not start


def encoder_pids() -> set[int]:
    """The processes of the encoder actors: Ray titles them after the callable class."""
    return {p.pid for p in psutil.process_iter(["cmdline"])
            if "_Encoder" in " ".join(p.info["cmdline"] or []) and p.info["cmdline"][0].startswith("ray::")}


class KillingStore(FeatureStore):
    """A feature store that, on receiving its first batch, kills one encoder actor's process."""

    killed: int | None = None

    def add(self, keys, features):
        if self.killed is None:
            self.killed = sorted(encoder_pids())[0]
            os.kill(self.killed, signal.SIGKILL)
            psutil.Process(self.killed).wait(timeout=30)
        return super().add(keys, features)


def test_workers_write_their_own_shards_and_the_driver_indexes_them(tmp_path, local_ray, monkeypatch):
    """extract.ray.workers_write: the actors write the shards into the (shared) store; the driver
    only verifies and indexes them; same features as the local engine, and a re-run reuses them."""
    rows = write_images(tmp_path / "img", 8, seed=4)
    expected = local_features(rows, small_params(), tmp_path / "local")
    engine = RayEngine(small_params(actors=1, cpus_per_actor=1, workers_write=True))
    store = FeatureStore(tmp_path / "store", engine.identity)
    written_here = []
    monkeypatch.setattr(store, "add", lambda *args: written_here.append(args))
    matrix, run = extract.extract(rows, engine, store, BATCH, 0)
    assert written_here == [] and (run.computed, run.reused) == (8, 0)
    np.testing.assert_array_equal(matrix, expected)
    assert store.index.counts() == (8, 8 // BATCH)
    again, run = extract.extract(rows, engine, FeatureStore(tmp_path / "store", engine.identity), BATCH, 0)
    assert (run.computed, run.reused) == (0, 8)
    np.testing.assert_array_equal(again, expected)
    engine.close()


def test_killed_encoder_actor_is_replaced_and_features_stay_identical(tmp_path, local_ray):
    rows = write_images(tmp_path / "img", N_IMAGES, seed=4)
    params = small_params(actors=2, cpus_per_actor=0.5)
    expected = local_features(rows, params, tmp_path / "local")
    engine = RayEngine(params)
    store = KillingStore(tmp_path / "store", engine.identity)
    matrix, run = extract.extract(rows, engine, store, BATCH, 0)
    engine.close()
    assert store.killed is not None and not psutil.pid_exists(store.killed)
    assert run.computed == N_IMAGES
    np.testing.assert_array_equal(matrix, expected)


# ------------------------------------------------------------------ the command and the stage


def predict(project, *args):
    return subprocess.run([sys.executable, "-m", "fakedetect", "predict", "--project", str(project), *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=project)


def test_predict_on_ray_matches_local_and_lists_the_corrupt_file(trained_project, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, source in enumerate(sorted((trained_project / "data/demo/test").rglob("*.png"))[::8][:5]):
        shutil.copy(source, folder / f"img{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    on_ray, local = predict(trained_project, "--csv", "--engine", "ray", folder), predict(trained_project, "--csv", folder)
    assert on_ray.returncode == 1 and local.returncode == 1, on_ray.stderr
    assert "Traceback" not in on_ray.stderr and "broken.jpg: truncated" in on_ray.stderr
    on_ray, local = (list(csv.DictReader(io.StringIO(r.stdout))) for r in (on_ray, local))
    assert [r["path"] for r in on_ray] == [r["path"] for r in local] and len(on_ray) == 6
    assert [r["status"] for r in on_ray] == ["unreadable"] + ["ok"] * 5 and on_ray[0]["reason"] == "truncated"
    np.testing.assert_allclose([float(r["p_fake"]) for r in on_ray[1:]], [float(r["p_fake"]) for r in local[1:]],
                               atol=1e-5)
    assert [(r["fake"], r["family"]) for r in on_ray] == [(r["fake"], r["family"]) for r in local]


@pytest.mark.fast
def test_a_ray_instance_started_here_is_told_to_listen_on_loopback(monkeypatch):
    """A Ray instance the engine starts (address null) gets Ray's loopback-only switch before ray is
    imported (its processes inherit it; the fixture above checks the node address it gives)."""
    monkeypatch.delenv(ray_engine.LOOPBACK_ONLY, raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # stop before starting one
    assert ray_engine.connect(RayParams()) is False
    assert os.environ[ray_engine.LOOPBACK_ONLY] == "0"


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_unreachable_address_fails_fast_naming_the_key(tmp_path, scheme):
    """A closed loopback port (bound, then closed: nothing listens), as host:port and as a Ray client
    address: the stage stops within seconds. Tests reach only this machine."""
    address = f"{scheme}127.0.0.1:{free_port()}"
    rows = write_images(tmp_path / "img", 2, seed=0)
    root = project(tmp_path, rows, {"engine": "ray", "ray": {"address": address}})
    start = time.monotonic()
    result = run_stage("extract_clip", root, timeout=60, env=stage_env(HF_HUB_OFFLINE="1"))
    assert time.monotonic() - start < 30
    assert_stopped(result, "error: extract.ray.address:", address)


@pytest.mark.parametrize("ray_params, key", [
    ({"address": "http://head:6379"}, "extract.ray.address"),
    ({"actors": 0}, "extract.ray.actors"),
    ({"gpus_per_actor": -1}, "extract.ray.gpus_per_actor"),
    ({"adress": "auto"}, "extract.ray.adress: unknown key"),
])
@pytest.mark.fast
def test_bad_ray_params_name_the_key(tmp_path, ray_params, key):
    (tmp_path / "params.yaml").write_text(json.dumps({"extract": {"engine": "ray", "ray": ray_params}}))
    with pytest.raises(Exception, match=key.replace(".", r"\.")):
        load_params(tmp_path / "params.yaml")

"""The Ray engine (`extract.engine: ray`): a Ray Data pipeline on a Ray instance started on this
machine's cores or on a running cluster (`extract.ray`). Reader tasks read, verify and crop;
a pool of actors, each holding the backbone once (on its own GPU where it has one), encodes; feature
batches stream back to the caller, which writes them (fakedetect.features.engines says why), or,
with extract.ray.workers_write, the actors write them into a store every node shares and only the
shard's name comes back, for the caller to verify and index.
"""
from __future__ import annotations

import torch  # noqa: I001  before anything that could import TensorFlow: the reverse order segfaults

import contextlib
import json
import logging
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import fakedetect
from fakedetect.data.images import Limits
from fakedetect.features import backbones
from fakedetect.features import shard_files
from fakedetect.features.local_engine import (Encoded, Item, LocalEngine, ShardWriter, batches_of, encode_crops,
                                              first_crops, read)
from fakedetect.params import CropPolicy, ExtractParams, Perturbation, RayParams
from fakedetect.runtime.downloads import answers
from fakedetect.stage import UserError

# Ray's switch (read when ray is first imported; its processes inherit it) that keeps an instance started
# here on the loopback address: otherwise it listens on the machine's network address, open to its network.
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
CONNECT_TIMEOUT_S = 5.0  # a TCP connection to the cluster's address
JOIN_TIMEOUT_S = 15.0  # Ray joining it, once the address answers


@contextlib.contextmanager
def package_on_path(folder: Path) -> Iterator[None]:
    """The package's folder first on PYTHONPATH while a Ray instance starts here: its processes inherit
    this environment, so its workers find the package. (A runtime_env saying the same would make Ray
    start every worker through a setup process of its own, seconds of CPU each, and leave the workers
    it starts ahead unused.)"""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), before]))
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


def connect(p: RayParams) -> bool:
    """Join the cluster `extract.ray.address` names, or start a Ray instance on this machine's
    cores (address null); a Ray already initialised in this process is used as it is. Returns
    whether this call started or joined Ray (and so must shut it down)."""
    if p.address is None:
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    import ray

    if ray.is_initialized():
        return False
    package = str(Path(fakedetect.__file__).parent)
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if p.address is None:
        # Enough logical CPUs for the encoders and one reader, sharing the cores as the local
        # engine's loader processes do (fewer would leave the readers waiting forever).
        cpus = max(os.cpu_count() or 1, math.ceil(p.actors * p.cpus_per_actor) + 1)
        with package_on_path(Path(package).parent):
            ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
        return True
    advice = "start the cluster (ray start --head) or set address: null for a Ray instance on this machine"
    if p.address != "auto":
        host, port = p.address.removeprefix("ray://").rsplit(":", 1)
        if not answers(host, int(port), CONNECT_TIMEOUT_S):
            raise UserError(f"extract.ray.address: {p.address} does not answer within {CONNECT_TIMEOUT_S:.0f} s; {advice}")
    # Ray's own connection retries take 30 s or more: wait for them in a thread, at most JOIN_TIMEOUT_S.
    outcome: list[BaseException | None] = []

    def join() -> None:
        try:  # other machines get the package with the job
            ray.init(address=p.address, runtime_env={"py_modules": [package]}, **quiet)
            outcome.append(None)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, grpc errors
            outcome.append(exc)

    joining = threading.Thread(target=join, daemon=True)
    joining.start()
    joining.join(JOIN_TIMEOUT_S)
    if not outcome:
        raise UserError(f"extract.ray.address: no Ray cluster answered at {p.address} within {JOIN_TIMEOUT_S:.0f} s; {advice}")
    if outcome[0] is not None:
        exc = outcome[0]
        raise UserError(f"extract.ray.address: cannot connect to {p.address} ({type(exc).__name__}: {exc}); {advice}")
    return True


def _raising_user_errors(call):
    """Run `call`; an error a Ray task raised for bad params or input comes back as itself."""
    import ray

    try:
        return call()
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, UserError):
            raise UserError(str(exc.cause)) from None
        raise


def _describe(params: ExtractParams) -> tuple[dict, int, int, str, list[tuple[str, int]]]:
    """(identity, transform crop, feature dimension, device, layers) of the backbone as an actor builds it."""
    backbone = backbones.create(params)
    return (backbone.identity, backbone.transform.crop, LocalEngine(backbone).dimension(), str(backbone.device),
            list(backbone.layers))


def _read_batch(row: dict, crop: int, limits: Limits) -> dict:
    """Ray task: one batch's files -> their uint8 crops (`counts` per image), which of them could be
    read, and why not."""
    pixels, ok, problems = [], [], []
    for j, (path, sha256, perturbation, policy) in enumerate(
            zip(row["paths"], row["sha256"], row["perturbations"], row["crops"])):
        perturbation = Perturbation.model_validate_json(perturbation) if perturbation else None
        policy = CropPolicy.model_validate_json(policy) if policy else None
        crops_j, reason, message = read(Item(str(path), str(sha256) or None, perturbation, policy), crop, limits)
        if crops_j is None:
            problems.append([j, reason, message])
        else:
            ok.append(j)
            pixels.append(crops_j)
    stacked = np.concatenate(pixels) if pixels else np.zeros((0, crop, crop, 3), np.uint8)
    return {"batch": row["batch"], "ok": np.asarray(ok, np.int64), "pixels": stacked,
            "counts": np.asarray([len(p) for p in pixels], np.int64), "problems": json.dumps(problems),
            "keys": list(row["keys"])}


class _Encoder:
    """Ray Data callable class: the backbone is built once per actor; rows are whole batches."""

    def __init__(self, params: ExtractParams, identity: dict, keep_pixels: bool, writer: ShardWriter | None = None):
        torch.set_num_threads(math.ceil(params.ray.cpus_per_actor))
        self.backbone = backbones.create(params)
        self.keep_pixels = keep_pixels
        self.writer = writer
        if self.backbone.identity != identity:
            raise UserError(f"extract.pretrained: this Ray node's backbone {self.backbone.identity} differs "
                            f"from the driver's {identity}: give every node the same weights file")

    def __call__(self, rows: dict) -> dict:
        pixels, counts = rows["pixels"][0], [int(n) for n in rows["counts"][0]]
        features = (encode_crops(self.backbone, pixels, counts) if len(pixels)
                    else np.zeros((0, 0), np.float32))
        out = {"batch": rows["batch"], "ok": rows["ok"], "problems": rows["problems"], "features": [features],
               "shard": [""]}
        if self.writer is not None and len(pixels):  # the shard goes to the shared store, not to the driver
            keys = [str(rows["keys"][0][j]) for j in rows["ok"][0]]
            w = self.writer
            out["shard"] = [shard_files.write(Path(w.folder), w.model_id, keys, features, w.dtype)[0].name]
            out["features"] = [np.zeros((0, features.shape[1]), np.float32)]
        if self.keep_pixels:
            out["pixels"] = [first_crops(pixels, counts)]
        return out


class RayEngine:
    """A Ray Data pipeline: reader tasks -> encoder actors -> batches back to the caller."""

    def __init__(self, params: ExtractParams):
        self.params = params
        self.workers_write = params.ray.workers_write  # encoders write shards into a shared store
        self._owns_ray = connect(params.ray)
        import ray

        describe = ray.remote(num_cpus=params.ray.cpus_per_actor, num_gpus=params.ray.gpus_per_actor)(_describe)
        try:
            self.identity, self.crop, self._dimension, self.device, self.layers = _raising_user_errors(
                lambda: ray.get(describe.remote(params)))
        except BaseException:
            self.close()
            raise

    def dimension(self) -> int:
        return self._dimension

    def encode(self, items: list[Item], crop: int, batch_size: int, loader_workers: int = 0,
               limits: Limits = Limits(), keep_pixels: bool = False,
               writer: ShardWriter | None = None) -> Iterator[Encoded]:
        """`loader_workers` is the local engine's: here Ray runs as many readers as it has CPUs for.
        With a `writer`, encoders write each batch's shard into the store themselves and only its
        name comes back (docs/cluster.md "Running on a cluster")."""
        import ray

        context = ray.data.DataContext.get_current()  # the first use imports ray.data, which sets its log level
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # not its INFO line at the end of each run
        context.enable_progress_bars = False  # the caller's own progress bar counts images
        context.print_on_execution_start = False
        batches = batches_of(len(items), batch_size)
        rows = [{"batch": b, "paths": [items[i].path for i in positions],
                 "sha256": [items[i].sha256 or "" for i in positions],
                 "perturbations": [items[i].perturbation.model_dump_json() if items[i].perturbation else ""
                                   for i in positions],
                 "crops": [items[i].crop.model_dump_json() if items[i].crop else "" for i in positions],
                 "keys": [writer.keys[i] for i in positions] if writer else []}
                for b, positions in enumerate(batches)]
        p = self.params.ray
        dataset = (ray.data.from_items(rows, override_num_blocks=len(rows))
                   .map(_read_batch, fn_kwargs={"crop": crop, "limits": limits})
                   .map_batches(_Encoder, fn_constructor_args=(self.params, self.identity, keep_pixels, writer),
                                batch_size=1, compute=ray.data.ActorPoolStrategy(size=p.actors),
                                num_cpus=p.cpus_per_actor, num_gpus=p.gpus_per_actor))
        # Ray Data's defaults do the fault handling: a dead actor is restarted and its batch retried
        # (max_restarts, max_task_retries: -1), a failed reader task is retried (max_retries: -1).
        results = iter(dataset.iter_rows())
        while True:
            row = _raising_user_errors(lambda: next(results, None))
            if row is None:
                return
            start = batches[int(row["batch"])].start
            problems = [(start + j, reason, message) for j, reason, message in json.loads(row["problems"])]
            yield Encoded([start + int(j) for j in row["ok"]], np.asarray(row["features"], np.float32),
                          np.asarray(row["pixels"]) if keep_pixels else None, problems, str(row["shard"]) or None)

    def close(self) -> None:
        import ray

        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False

"""Extraction throughput on 1024 demo images, OpenCLIP ViT-B-32 (random weights), 2 threads:

(a) the stage's extraction path (loader process decoding and transforming, encoder, store),
(b) the bare encoder on tensors already in memory, same batch size,
(c) a per-image loop as the notebook did it (OpenCV read, PIL, torchvision transform, one
    image per encoder call), on the first 128 images,
and the ratios a/b (target >= 0.85: decoding hidden behind the model) and a/c (target >= 3).
All three in float32, UnivFD's precision. Then (a') the stage path with `precision: bfloat16`
where the CPU has native bf16, its ratio to (c), and how far its features are from float32's.
Then (r) the same stage path on the ray engine (a Ray instance on this machine, one encoder
actor with THREADS CPUs): its images/s, its ratio to (a) (target >= 0.8: on one machine the
engine can only add overhead), its start-up seconds (starting Ray, building the backbone once
to learn its identity), the seconds each engine takes from an encode call to its first batch (for
ray: Ray Data starting the reader tasks and the actor pool, whose actors import torch and build the
backbone: a fixed cost per call that the 1024 images amortise as a stage's thousands do) and whether
its features equal (a)'s bit for bit; and one reader's
images/s (decode, hash, centre crop on one core), the figure a cluster's CPUs per GPU follow from.
Plus peak resident memory (of the stage path, before (b) holds all 1024 tensors in memory) and the
load average: with other processes on the two cores, two OpenMP threads stall at every
synchronisation and small batches (c) suffer most, so run it on an idle machine. Needs `dvc repro preprocess`. Prints `name: value` lines.
`--smoke`: 4 images, 2 in the loop (seconds; the figures mean nothing).
"""
import os
import resource
import sys
import tempfile
import time

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from fakedetect.features import backbones, extract, local_engine
from fakedetect.data import images, manifests
from fakedetect.artifacts import PREPROCESSED_MANIFEST
from fakedetect.features.feature_store import FeatureStore
from fakedetect.features.ray_engine import RayEngine
from fakedetect.params import ExtractParams, RayParams

SMOKE = "--smoke" in sys.argv
N_IMAGES = 4 if SMOKE else 1024
N_LOOP = 2 if SMOKE else 128
THREADS = 2


def run_stage_path(rows, backbone, params) -> tuple[float, np.ndarray]:
    """Images/s of extract.extract into an empty store, and the features."""
    with tempfile.TemporaryDirectory() as store:
        start = time.perf_counter()
        matrix, _ = extract.extract(rows, backbone, FeatureStore(store, backbone.identity), params.batch_size,
                                    params.loader_workers)
        return len(rows) / (time.perf_counter() - start), matrix


def first_batch_s(engine, rows, params) -> float:
    """Seconds from an encode call of one batch to its features: the pipeline's fill."""
    items = [local_engine.Item(path) for path in rows.image[:params.batch_size]]
    start = time.perf_counter()
    list(engine.encode(items, backbones.CROP, params.batch_size, params.loader_workers))
    return time.perf_counter() - start


def run_ray_engine(rows, params) -> tuple[float, float, float, np.ndarray]:
    """(start-up seconds, first-batch seconds, images/s, features) of the stage path on a Ray
    instance on this machine."""
    start = time.perf_counter()
    engine = RayEngine(params.model_copy(update={"engine": "ray",
                                                         "ray": RayParams(actors=1, cpus_per_actor=THREADS)}))
    startup = time.perf_counter() - start
    try:
        first = first_batch_s(engine, rows, params)
        rate, matrix = run_stage_path(rows, engine, params)
    finally:
        engine.close()
    return startup, first, rate, matrix


def reader_rate(rows) -> float:
    """Images/s of one reader (decode, hash, centre crop) in this process: one core's share."""
    start = time.perf_counter()
    for path in rows.image:
        local_engine.read(local_engine.Item(path), backbones.CROP, images.Limits())
    return len(rows) / (time.perf_counter() - start)


def main() -> None:
    load_at_start = os.getloadavg()[0]
    torch.set_num_threads(THREADS)
    try:
        rows = manifests.read_manifest(PREPROCESSED_MANIFEST)
    except FileNotFoundError:
        sys.exit(f"{PREPROCESSED_MANIFEST} not found: run `dvc repro preprocess` first")
    rows = rows[rows.status == "ok"].drop_duplicates("image_sha256").head(N_IMAGES).reset_index(drop=True)
    params = ExtractParams(model="ViT-B-32", pretrained=None)
    backbone = backbones.create(params)
    backbone.encode(torch.zeros(8, 3, 224, 224))  # warm-up

    local_first = first_batch_s(local_engine.LocalEngine(backbone), rows, params)
    stage_path, full = run_stage_path(rows, backbone, params)
    peak_stage_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    peak_loaders_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # before Ray's processes
    ray_startup, ray_first, ray_rate, on_ray = run_ray_engine(rows, params)
    reader = reader_rate(rows)

    tensors = [backbone.transform(images.load(path).rgb) for path in rows.image]
    batches = [torch.stack(tensors[i:i + params.batch_size]) for i in range(0, len(tensors), params.batch_size)]
    start = time.perf_counter()
    for batch in batches:
        backbone.encode(batch)
    bare = len(rows) / (time.perf_counter() - start)

    notebook_transform = transforms.Compose([transforms.CenterCrop(224), transforms.ToTensor(),
                                             transforms.Normalize(backbones.CLIP_MEAN, backbones.CLIP_STD)])
    clip = backbone.encoder.clip
    start = time.perf_counter()
    with torch.no_grad():
        for path in rows.image[:N_LOOP]:
            image = Image.fromarray(cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB))
            clip.encode_image(notebook_transform(image).unsqueeze(0)).numpy()
    loop = N_LOOP / (time.perf_counter() - start)

    bf16 = None
    if backbones.cpu_has_native_bf16():
        bf16_params = params.model_copy(update={"precision": "bfloat16"})
        bf16_backbone = backbones.create(bf16_params)
        bf16_backbone.encode(torch.zeros(8, 3, 224, 224))  # warm-up
        bf16_path, reduced = run_stage_path(rows, bf16_backbone, bf16_params)
        cosine = (full * reduced).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(reduced, axis=1)
        relative = np.linalg.norm(full - reduced, axis=1) / np.linalg.norm(full, axis=1)
        bf16 = bf16_path, cosine.min(), relative.mean()

    print(f"images: {len(rows)}")
    print(f"batch_size: {params.batch_size}")
    print(f"loader_workers: {params.loader_workers}")
    print(f"threads: {THREADS}")
    print(f"load_average_at_start: {load_at_start:.2f}")  # other processes on the cores distort every figure
    print(f"load_average_at_end: {os.getloadavg()[0]:.2f}")
    print(f"a_stage_path_images_per_s: {stage_path:.2f}")
    print(f"b_bare_encoder_images_per_s: {bare:.2f}")
    print(f"c_per_image_loop_images_per_s: {loop:.2f}")
    print(f"ratio_a_over_b: {stage_path / bare:.3f}")
    print(f"ratio_a_over_c: {stage_path / loop:.2f}")
    print(f"r_ray_engine_images_per_s: {ray_rate:.2f}")
    print(f"ratio_r_over_a: {ray_rate / stage_path:.3f}")
    print(f"ray_engine_startup_s: {ray_startup:.1f}")
    print(f"first_batch_s_local: {local_first:.1f}")
    print(f"first_batch_s_ray: {ray_first:.1f}")
    print(f"ray_features_bit_identical: {np.array_equal(on_ray, full)}")
    print(f"reader_images_per_s_one_core: {reader:.0f}")
    if bf16 is None:
        print("a_bf16_stage_path_images_per_s: n/a (no native bfloat16 on this CPU)")
    else:
        print(f"a_bf16_stage_path_images_per_s: {bf16[0]:.2f}")
        print(f"ratio_a_bf16_over_c: {bf16[0] / loop:.2f}")
        print(f"ratio_a_bf16_over_a: {bf16[0] / stage_path:.2f}")
        print(f"bf16_vs_float32_min_cosine: {bf16[1]:.6f}")
        print(f"bf16_vs_float32_mean_relative_error: {bf16[2]:.4f}")
    print(f"peak_rss_stage_path_mb: {peak_stage_mb:.0f}")
    print(f"peak_rss_whole_bench_mb: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
    print(f"peak_rss_loader_workers_mb: {peak_loaders_mb:.0f}")


if __name__ == "__main__":
    main()

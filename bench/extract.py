"""Extraction throughput on 512 demo images, OpenCLIP ViT-B-32 (random weights), 2 threads:

(a) the stage's extraction path (loader process decoding and transforming, encoder, store),
(b) the bare encoder on tensors already in memory, same batch size,
(c) a per-image loop as the notebook did it (OpenCV read, PIL, torchvision transform, one
    image per encoder call), on the first 128 images,
and the ratios a/b (target >= 0.85: decoding hidden behind the model) and a/c (target >= 3),
plus peak resident memory (of the stage path, before (b) holds all 512 tensors in memory). Needs `dvc repro preprocess`. Prints `name: value` lines.
"""
import resource
import sys
import tempfile
import time

import cv2
import torch
from PIL import Image
from torchvision import transforms

from fakedetect import backbones, extract, images, layouts
from fakedetect.featurestore import FeatureStore
from fakedetect.params import ExtractParams

MANIFEST = "data/preprocessed.csv"
N_IMAGES = 512
N_LOOP = 128
THREADS = 2


def main() -> None:
    torch.set_num_threads(THREADS)
    try:
        rows = layouts.read_manifest(MANIFEST)
    except FileNotFoundError:
        sys.exit(f"{MANIFEST} not found: run `dvc repro preprocess` first")
    rows = rows[rows.status == "ok"].drop_duplicates("image_sha256").head(N_IMAGES).reset_index(drop=True)
    params = ExtractParams(model="ViT-B-32", pretrained=None)
    backbone = backbones.create(params)
    backbone.encode(torch.zeros(8, 3, 224, 224))  # warm-up

    with tempfile.TemporaryDirectory() as store:
        start = time.perf_counter()
        extract.extract(rows, backbone, FeatureStore(store, backbone.identity), params.batch_size, params.loader_workers)
        stage_path = len(rows) / (time.perf_counter() - start)
    peak_stage_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

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

    print(f"images: {len(rows)}")
    print(f"batch_size: {params.batch_size}")
    print(f"loader_workers: {params.loader_workers}")
    print(f"threads: {THREADS}")
    print(f"a_stage_path_images_per_s: {stage_path:.2f}")
    print(f"b_bare_encoder_images_per_s: {bare:.2f}")
    print(f"c_per_image_loop_images_per_s: {loop:.2f}")
    print(f"ratio_a_over_b: {stage_path / bare:.3f}")
    print(f"ratio_a_over_c: {stage_path / loop:.2f}")
    print(f"peak_rss_stage_path_mb: {peak_stage_mb:.0f}")
    print(f"peak_rss_whole_bench_mb: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
    print(f"peak_rss_loader_workers_mb: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f}")


if __name__ == "__main__":
    main()

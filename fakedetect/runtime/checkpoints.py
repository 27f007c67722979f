"""Reading a state dict that a params key names, or saying why not.

Weights files come from users (`extract.pretrained`, `attribution.weights`,
`linear.external_head`): a whole pickled model, a text file, a truncated download. They are
read with `torch.load(weights_only=True)` (never unpickling code) or safetensors, and any
failure becomes a UserError naming the key, the file and what was expected, never a
traceback from deep inside torch or open_clip.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from fakedetect.stage import UserError


def _why_unreadable(exc: Exception) -> str:
    """One line on why torch or safetensors refused a file (theirs run to a page and suggest
    weights_only=False, which would run code from the file)."""
    text = str(exc).strip()
    unpickled = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if unpickled:  # torch.save(model) rather than torch.save(model.state_dict())
        return (f"it holds a pickled {unpickled.group(1)} object, which is never unpickled (it could run code); "
                "save the model's state_dict() instead")
    what = "the checkpoint archive is incomplete or damaged" if "zip archive" in text else "its bytes are not a checkpoint"
    return f"{what} (a text file, a truncated download, or not a torch/safetensors file?)"


def _describe(state) -> str:
    if not isinstance(state, dict):
        return f"a {type(state).__name__}"
    if not state:
        return "an empty dict"
    name, value = next((k, v) for k, v in state.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor)))
    return f"a dict whose entry {name!r} is a {type(value).__name__}, not a tensor"


def load_state_dict(path: str | os.PathLike, key: str, expected: str) -> dict[str, torch.Tensor]:
    """The tensors saved at `path` (torch.save of a state dict, or .safetensors). A training checkpoint
    that keeps them under 'state_dict' (open_clip's, Lightning's) is unwrapped. Anything else stops
    with a UserError naming `key`, the file and `expected` (what the key should point at)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{key}: {path} not found; expected {expected}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types for files that are not safe state dicts
        raise UserError(f"{key}: cannot read {path} as {expected}: {_why_unreadable(exc)}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise UserError(f"{key}: {path} holds {_describe(state)}; expected {expected}")
    return state

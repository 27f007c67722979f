"""OpenCLIP image features by layer (`extract.layers`): the CLS token after chosen transformer
blocks of a ViT, and/or the usual `encode_image` output, concatenated in network order
(docs/pipeline.md "Per-block features").

The per-block token is RINE's (Koutlis & Papadopoulos, ECCV 2024): the class token of the block's
output, the raw residual stream, before `ln_post` and `proj` (width: the transformer's). `final`
is `encode_image` itself (unnormalised), so its slice equals the features of `layers: null`, and
`ln_post` then `proj` of the last block's CLS token give it again (pool_type 'tok').

The tokens are read by forward hooks on `visual.transformer.resblocks`, registered for the call
only, so the model runs its own forward, whatever its `batch_first`, `attn_mask` or patch dropout
(an identity in eval mode, which the encoder is always in); the class token is at position 0 of
the sequence (open_clip prepends it), also for `pool_type: avg` towers, whose `final` averages the
patch tokens instead. Without `final`, the forward stops after the deepest requested block.
"""
from __future__ import annotations

import re

import torch

from fakedetect.stage import UserError

FINAL = "final"


class _Done(Exception):
    """Raised by the deepest hook when nothing after it is needed."""


def block_names(clip: torch.nn.Module) -> list[str]:
    """block0..block{N-1} of an OpenCLIP ViT image tower; [] for the others (ResNet, timm, HF towers)."""
    blocks = getattr(getattr(getattr(clip, "visual", None), "transformer", None), "resblocks", None)
    has_cls = getattr(clip.visual, "class_embedding", None) is not None
    return [f"block{i}" for i in range(len(blocks))] if blocks is not None and has_cls else []


def resolve(clip: torch.nn.Module, model: str, layers: list[str] | None) -> list[str]:
    """The requested layers in network order (null = [final]), or a UserError naming extract.layers."""
    if layers is None:
        return [FINAL]
    valid = block_names(clip) + [FINAL]
    unknown = [name for name in layers if name not in valid]
    if unknown:
        kind = ("block0..block%d, final" % (len(valid) - 2)) if len(valid) > 1 else \
            "only final: per-block features need an OpenCLIP ViT (its image tower is not one)"
        raise UserError(f"extract.layers: {', '.join(unknown)} not a layer of {model}; valid: {kind}")
    return sorted(set(layers), key=valid.index)


class ClipBlocks(torch.nn.Module):
    """An OpenCLIP model -> the concatenated features of `layers` (resolved, in network order)."""

    def __init__(self, clip: torch.nn.Module, layers: list[str]):
        super().__init__()
        self.clip = clip
        self.final = FINAL in layers
        self.blocks = [int(re.fullmatch(r"block(\d+)", name).group(1)) for name in layers if name != FINAL]
        visual = clip.visual
        self.batch_first = getattr(visual.transformer, "batch_first", True) if self.blocks else True

    def _hook(self, i: int, tokens: list[torch.Tensor]):
        last = not self.final and i == max(self.blocks)

        def keep(module, args, output):
            tokens.append(output[:, 0] if self.batch_first else output[0])
            if last:
                raise _Done

        return keep

    def widths(self) -> list[int]:
        """The width of each slice, in order: the transformer's per block, the embedding's for final."""
        visual = self.clip.visual
        out = [visual.transformer.width] * len(self.blocks)
        return out + ([int(visual.output_dim)] if self.final else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens: list[torch.Tensor] = []
        resblocks = self.clip.visual.transformer.resblocks if self.blocks else []
        hooks = [resblocks[i].register_forward_hook(self._hook(i, tokens)) for i in self.blocks]
        try:  # the hooks live only during this call: the model stays as open_clip built it
            final = self.clip.encode_image(x)
        except _Done:
            final = None
        finally:
            for hook in hooks:
                hook.remove()
        parts = tokens + ([final] if self.final else [])
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)

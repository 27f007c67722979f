"""Hierarchical attribution with a fine-tuned torchvision ResNet: level 1 tells real from fake,
level 2 a fake's family (attribution.level2.families: GAN or diffusion by default), level 3
(optional) its generator; the hierarchy (real / GAN / diffusion by default) chains levels 1 and 2.

This is the second part of the notebook project (ResNet-50, first layers frozen) and the
hierarchy of Level Up (Guarnera, Giudice, Battiato 2023, ResNet-34). One module per concern:

- `levels`: the registry. One entry per level says what it decides: its rows, classes,
  target, report and published figures.
- `data`: which rows each level trains, validates and tests on, split without leakage.
- `network`: the ResNet, its frozen stages and the trunk weights.
- `training`: the training images and frozen-trunk cache in scratch files, the training loop,
  and test images streamed in batches.
- `reports`: metrics and confusion matrices.
- `card`: the model card, and loading a trained level back for inference (all `predict` needs).
- `hierarchy`: train every level, then judge the 3-way decision on its own test rows.
"""

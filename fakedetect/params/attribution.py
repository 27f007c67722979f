"""Params of resnet_attribution: the network, its training, and what each level trains and tests on."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fakedetect import vocabulary
from fakedetect.params.base import PositiveInt, Section


RESNET_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
RESNET_STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
DEMO_TEST_SETS = list(vocabulary.DEMO_GENERATORS)


class Selection(Section):
    """Which rows of data/preprocessed.csv feed one part of a level."""

    sets: Annotated[list[str], Field(min_length=1)] = Field(
        description="'train' and 'val' name those splits; any other name is a test set"
    )
    generators: list[str] | None = Field(
        None, description="fake generators kept (null = all); real images are always kept"
    )


class LevelParams(Section):
    """The data of one level. A set in both train and test is split by group (split.group_by)."""

    train: Selection
    val: Selection | None = Field(None, description="null = carve split.val_fraction of the training groups")
    test: Selection


class Level3Params(LevelParams):
    enabled: bool = True


FAKE_FAMILIES = tuple(f for f in vocabulary.FAMILIES if f != "real")


class FamilyLevelParams(LevelParams):
    """Level 2: which families it tells apart (its classes, in this order); fakes of other
    families are not its rows."""

    families: list[Literal[FAKE_FAMILIES]] = Field(
        ["gan", "diffusion"], min_length=2, description="the fake families level 2 tells apart")

    @model_validator(mode="after")
    def _distinct(self):
        if len(set(self.families)) != len(self.families):
            raise ValueError(f"families must not repeat a family, got {self.families}")
        return self


class HierarchyParams(Section):
    """Where the 3-way decision (real, then level 2's families) is judged."""

    test: Selection | None = Field(None, description="null = level 1's test sets; rows a level trained or "
                                                     "validated on are always left out")


class GroupSplitParams(Section):
    """How a set used for both training and testing is split without leakage."""

    group_by: Literal["category", "image"] = Field(
        "category", description="category: the class folder (the source photo in the demo); image: the file"
    )
    test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.34
    val_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.25


class AttributionParams(Section):
    """Defaults: the offline demo's setting (params.yaml); the notebook's setup is profiles/univfd.yaml."""

    seed: int = 0
    arch: Literal[RESNET_ARCHS] = "resnet18"
    weights: str = Field("none", description="imagenet (torchvision's DEFAULT weights) | none | path to a state dict")
    freeze: list[Literal[RESNET_STAGES]] = Field(["stem", "layer1", "layer2"], description="stages whose weights stay as loaded")
    reuse_frozen: bool = Field(True, description="compute the frozen leading stages once per image")
    crop_size: Annotated[int, Field(ge=32)] | None = Field(96, description="training crop (pixels); null = whole image")
    crops_per_image: PositiveInt = Field(1, description="random crops of each training image per epoch")
    precise_bn: PositiveInt | None = Field(
        128, description="after each epoch, the trainable BatchNorm layers' statistics recomputed on this many "
        "whole training images (a seeded sample) before validation; null = the running averages of training")
    batch_size: PositiveInt = 32
    lr: Annotated[float, Field(gt=0.0)] = 1e-3
    max_epochs: PositiveInt = 12
    patience: PositiveInt = Field(6, description="epochs without a better validation accuracy before stopping")
    class_balance: bool = Field(True, description="weight the loss so that each class counts equally")
    threads: PositiveInt = Field(2, description="torch threads: the numbers depend on the count (the gradients are summed over them)")
    split: GroupSplitParams = GroupSplitParams()
    level1: LevelParams = LevelParams(train=Selection(sets=DEMO_TEST_SETS + list(vocabulary.DEMO_CONTROLS)),
                                      test=Selection(sets=DEMO_TEST_SETS + list(vocabulary.DEMO_CONTROLS)))
    level2: FamilyLevelParams = FamilyLevelParams(train=Selection(sets=DEMO_TEST_SETS),
                                                  test=Selection(sets=DEMO_TEST_SETS))
    level3: Level3Params = Level3Params(train=Selection(sets=DEMO_TEST_SETS), test=Selection(sets=DEMO_TEST_SETS))
    hierarchy: HierarchyParams = HierarchyParams()

    @model_validator(mode="after")
    def _crop_fits(self):
        if self.crop_size is not None and self.crop_size % 32:
            raise ValueError(f"crop_size must be a multiple of 32 (the network's stride), got {self.crop_size}")
        return self

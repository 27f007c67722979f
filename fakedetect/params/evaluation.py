"""Params of the evaluation stages: tsne, robustness and the generalisation protocols (`evaluation`)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fakedetect import vocabulary
from fakedetect.params.base import PositiveInt, Section
from fakedetect.params.data import SPLITS


class TsneParams(Section):
    max_points: Annotated[int, Field(ge=10)] = 2000
    perplexity: Annotated[float, Field(gt=0)] = 30.0
    seed: int = 0
    splits: list[Literal[SPLITS]] = ["train", "test"]


class Perturbation(Section):
    """One grid point: the keys it names are applied to the original test image in a fixed order,
    blur, then resize, then size, then JPEG (UnivFD blurs before it compresses), then noise; a key it omits
    is not applied."""

    blur: Annotated[float, Field(ge=0.0)] | None = Field(
        None, description="Gaussian sigma, per channel on the uint8 array (scipy.ndimage.gaussian_filter)")
    resize: Annotated[float, Field(gt=0.0, le=8.0)] | None = Field(
        None, description="scale factor (Pillow's bicubic, antialiased)")
    size: Annotated[int, Field(ge=8)] | None = Field(
        None, description="the shorter side resized to this many pixels, the aspect kept (Pillow's bicubic, antialiased)")
    jpeg: Annotated[int, Field(ge=1, le=100)] | None = Field(None, description="PIL JPEG quality, encoded in memory")
    noise: Annotated[float, Field(ge=0.0, le=1.0)] | None = Field(
        None, description="Gaussian noise sigma in [0, 1] pixel units, added last, seeded per image (its SHA-256, "
        "noise_seed); the result clipped and rounded to uint8")
    noise_seed: int | None = Field(None, description="with the image's SHA-256, seeds the noise; null = 0")

    @model_validator(mode="after")
    def _names_one(self):
        if self.blur is None and self.resize is None and self.size is None and self.jpeg is None and self.noise is None:
            raise ValueError("a perturbation names at least one of blur, resize, size, jpeg, noise")
        return self


class RobustnessParams(Section):
    """Test sets perturbed as UnivFD's validate.py does, scored by every classifier the run trained."""

    test_sets: list[str] | None = Field(list(vocabulary.DEMO_GENERATORS), description="test sets to perturb; null = all")
    max_per_class: PositiveInt | None = Field(
        50, description="at most this many real and fake images per test set (a seeded sample, the same at "
        "every grid point); null = all")
    seed: int = 0
    perturbations: Annotated[list[Perturbation], Field(min_length=1)] = (
        [Perturbation(jpeg=q) for q in (90, 70, 50, 30)] + [Perturbation(blur=s) for s in (1.0, 2.0, 3.0, 4.0)]
        + [Perturbation(resize=0.5), Perturbation(blur=2.0, jpeg=50)])

    @model_validator(mode="after")
    def _distinct(self):
        seen = set()
        for i, perturbation in enumerate(self.perturbations):
            key = (perturbation.blur, perturbation.resize, perturbation.size, perturbation.jpeg, perturbation.noise,
                   perturbation.noise_seed)
            if key in seen:
                raise ValueError(f"perturbations.{i} repeats an earlier grid point")
            seen.add(key)
        return self


PROTOCOLS = ("leave_one_generator_out", "chronological")
Share = Annotated[float, Field(gt=0.0, lt=1.0)]
DATE = r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$"  # YYYY, YYYY-MM or YYYY-MM-DD


class EvaluationParams(Section):
    """The generalisation protocols of the protocols stage: re-splits of the stored features by
    generator, every configured detector fitted on one side and judged on the other
    (docs/protocols.md)."""

    protocols: list[Literal[PROTOCOLS]] = Field(
        list(PROTOCOLS), description="leave_one_generator_out | chronological; [] = none (the stage writes empty reports)")
    window: PositiveInt = Field(1, description="chronological: generators per window, oldest first (AI-GenBench: 4)")
    held_out_share: Share = Field(
        0.5, description="photographs with images wanted on both sides of a fold: the seeded share given to the "
        "held-out side (the rest train)")
    val_fraction: Share = Field(
        0.25, description="the seeded share of photographs kept for validation on each side of a fold: the training "
        "side's test-split rows (the datasets' own train and val rows keep their split) and the held-out side "
        "(those calibrate the deployed detector's threshold and are not scored)")
    seed: int = 0
    generator_dates: dict[str, Annotated[str, Field(pattern=DATE)]] = Field(
        {}, description="generator name -> release date YYYY[-MM[-DD]]: adds to or overrides the built-in dates")

    @model_validator(mode="after")
    def _distinct(self):
        if len(set(self.protocols)) != len(self.protocols):
            raise ValueError(f"protocols: {self.protocols} names a protocol twice")
        return self


class AlignedParams(Section):
    """The format-aligned condition: every test image, real and fake alike, encoded the same way before its
    features, and scored again by every detector of the compare stage (docs/shortcuts.md)."""

    jpeg: Annotated[int, Field(ge=1, le=100)] | None = Field(
        96, description="Pillow JPEG quality (96: DDA's and Grommelt et al.'s control); null = no aligned condition")
    size: Annotated[int, Field(ge=8)] | None = Field(
        None, description="null | the shorter side every test image is resized to first (Pillow's bicubic)")
    max_per_class: PositiveInt | None = Field(
        50, description="at most this many real and fake images per test set (a seeded sample; the clean figures "
        "beside are on the same images); null = all")
    seed: int = 0

    def perturbation(self) -> Perturbation | None:
        """The condition as a perturbation (the feature store's key), or None when it is off."""
        if self.jpeg is None and self.size is None:
            return None
        return Perturbation(size=self.size, jpeg=self.jpeg)

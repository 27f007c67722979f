"""Params of the data stages: ingest (dataset roots, the demo set, skip rules) and preprocess (the
training protocols)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fakedetect import vocabulary
from fakedetect.params.base import Fraction, PositiveInt, Section, Workers


LAYOUTS = ("wang2020", "cnndetection_test", "univfd_diffusion", "generic")
SPLITS = ("train", "val", "test")


class DatasetSource(Section):
    """One dataset root and how to read it (docs/real_data.md "Real data")."""

    layout: Literal[LAYOUTS]
    root: str
    split: Literal[SPLITS] = "test"
    classes: list[str] | None = Field(
        None, description="class folders to keep (wang2020 and class-split test sets); null = all"
    )
    sets: list[str] | None = Field(None, description="test sets (generator folders) to keep; null = all")
    name: str | None = Field(None, description="generic layout: test-set name; default the folder name")
    family: Literal[vocabulary.FAMILIES] | None = Field(
        None, description="generic layout: family of its fakes; default looked up from the name"
    )


class DemoParams(Section):
    """The offline demo set built from photographs that ship inside installed packages."""

    out_dir: str = "data/demo"
    seed: int = 0
    patch_size: Annotated[int, Field(ge=224)] = 224
    train_per_class: PositiveInt = 400
    val_per_class: PositiveInt = 100
    test_per_class: PositiveInt = 150
    artifact_strength: Annotated[float, Field(gt=0.0, le=4.0)] = 2.0
    train_family: Literal[vocabulary.DEMO_GENERATORS] = vocabulary.DEMO_TRAIN_GENERATOR
    test_families: list[Literal[vocabulary.DEMO_GENERATORS]] = list(vocabulary.DEMO_GENERATORS)
    controls: bool = Field(True, description="add the real-only blurred and JPEG-q80 control test sets")
    format_biased: bool = Field(True, description="add the test set format_biased: reals JPEG q95-97 at several "
                                "sizes, fakes PNG at 256 px (docs/shortcuts.md)")


class IngestParams(Section):
    """How the image stages read their images; which images they read is the top-level `images`."""

    demo: DemoParams = DemoParams()
    datasets: list[DatasetSource] = []
    seed: int = 0
    max_per_class: PositiveInt | None = Field(
        1000, description="test sets: keep at most this many real and fake files each (UnivFD: 1000)"
    )
    keep_only_rgb: bool = Field(False, description="the notebook's filter: skip non-RGB files instead of converting")
    min_side: PositiveInt = 32
    max_pixels: PositiveInt = 89_478_485
    max_file_mb: Annotated[float, Field(gt=0)] = 200.0
    workers: Workers = 0



class AuditParams(Section):
    """The shortcut audit (stage audit): how well the file facts alone separate real from fake (docs/shortcuts.md)."""

    threshold: Annotated[float, Field(ge=0.5, le=1.0)] = Field(
        0.8, description="a set whose shortcut AUC reaches this is flagged")
    folds: Annotated[int, Field(ge=2)] = Field(5, description="stratified k-fold inside each set (at most the smaller class's count)")
    seed: int = 0
    max_per_class: PositiveInt | None = Field(
        5000, description="at most this many real and fake files of each split and test set (a seeded sample); null = all")
    facts: Annotated[list[Literal[vocabulary.FILE_FACTS]], Field(min_length=1)] = Field(
        [f for f in vocabulary.FILE_FACTS if f != "bytes_per_pixel"],
        description="the facts the classifier sees; bytes_per_pixel is left out by default: a lossless file's size "
        "follows its pixels (docs/shortcuts.md)")


class NotebookProtocol(Section):
    """The notebook project's training preprocessing (docs/pipeline.md "preprocess")."""

    jpeg_quality: Annotated[int, Field(ge=1, le=100)] = 80
    blur_kernel: Annotated[int, Field(ge=1)] = 5
    blur_fraction: Fraction = 0.5

    @model_validator(mode="after")
    def _odd_kernel(self):
        if self.blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be odd, got {self.blur_kernel}")
        return self


class BlurJpegProtocol(Section):
    """CNNDetection's Blur+JPEG(p) augmentation (Wang et al. 2020)."""

    prob: Fraction = 0.5
    load_size: Annotated[int, Field(ge=224)] = 256
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_quality: tuple[int, int] = (30, 100)
    jpeg_methods: list[Literal["cv2", "pil"]] = ["cv2", "pil"]
    flip: bool = True

    @model_validator(mode="after")
    def _ranges(self):
        lo, hi = self.blur_sigma
        if not 0 <= lo <= hi:
            raise ValueError(f"blur_sigma must be [low, high] with 0 <= low <= high, got {list(self.blur_sigma)}")
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise ValueError(f"jpeg_quality must be [low, high] within 1..100, got {list(self.jpeg_quality)}")
        return self


class PreprocessParams(Section):
    train_protocol: Literal["notebook", "blur_jpeg"] = "notebook"
    align_train_jpeg: Annotated[int, Field(ge=1, le=100)] | None = Field(
        None, description="null = off | a JPEG quality: every training image, real and fake, re-encoded at it (Pillow) "
        "before the training protocol, so that no compression history tells the classes apart (docs/shortcuts.md)")
    size: Annotated[int, Field(ge=32)] = 224
    seed: int = 0
    notebook: NotebookProtocol = NotebookProtocol()
    blur_jpeg: BlurJpegProtocol = BlurJpegProtocol()
    workers: Workers = 0

"""The one typed schema of `params.yaml`, checked at the start of every stage.

A misspelt key, a wrong type or an out-of-range value stops the stage before any
work, with a message that names the key (`ingest.datasets.0.root`) and what was
expected. Each stage reads only its own section, but the whole file is validated
so that a typo anywhere is caught by the first stage that runs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fakedetect import vocabulary
from fakedetect.stage import UserError

PARAMS_FILE = "params.yaml"

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
Workers = Annotated[int, Field(ge=0, description="worker processes; 0 = one per CPU core")]


class Section(BaseModel):
    """A params section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- ingest

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


# ----------------------------------------------------------------------- preprocess


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
    size: Annotated[int, Field(ge=32)] = 224
    seed: int = 0
    notebook: NotebookProtocol = NotebookProtocol()
    blur_jpeg: BlurJpegProtocol = BlurJpegProtocol()
    workers: Workers = 0


# -------------------------------------------------------------------------- extract

DEMO_LAYERS = tuple(f"block{i}" for i in range(7)) + ("head",)


class ImportSource(Section):
    """Precomputed features to read instead of extracting: a file, optionally a row range, and
    what those rows are. Several entries may name one file with different row ranges."""

    file: str = Field(description=".pt (a tensor), .npy or .npz; N x D float")
    key: str | None = Field(None, description=".npz: the array to read; null = its only array")
    rows: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] | None = Field(
        None, description="[start, stop) row range within the file; null = every row"
    )
    split: Literal[SPLITS]
    test_set: str = ""
    label: Literal[0, 1]
    generator: str | None = Field(None, description="default: 'real' for label 0, else the test set or 'unknown'")
    family: Literal[vocabulary.FAMILIES] | None = Field(None, description="default: looked up from the generator")

    @model_validator(mode="after")
    def _consistent(self):
        if self.rows is not None and self.rows[0] >= self.rows[1]:
            raise ValueError(f"rows must be [start, stop) with start < stop, got {list(self.rows)}")
        if (self.split == "test") != bool(self.test_set):
            raise ValueError("test rows need a test_set name, train and val rows must not have one")
        return self


class RayParams(Section):
    """Where the ray engine runs and how many encoders it starts (docs/cluster.md "Running on a cluster")."""

    address: str | None = Field(
        None, pattern=r"^(auto|ray://[^\s:/]+:\d+|[^\s:/]+:\d+)$",
        description="null = start a Ray instance on this machine's cores | auto = the cluster this machine "
                    "belongs to | ray://host:port (Ray client) | host:port (the head node's GCS)")
    actors: PositiveInt = Field(1, description="encoder actors, each holding the backbone once")
    cpus_per_actor: Annotated[float, Field(gt=0)] = Field(
        1.0, description="CPUs each encoder reserves; it runs this many torch threads (rounded up)")
    gpus_per_actor: Annotated[float, Field(ge=0)] = Field(0.0, description="GPUs each encoder reserves (1 on a GPU node)")


class ExtractParams(Section):
    model: str = Field("efficientnet_lite0", description="efficientnet_lite0 (the offline demo) or an OpenCLIP architecture")
    pretrained: str | None = Field("imagenet", description="open_clip tag, local checkpoint path, or null (seeded random init)")
    layers: list[Literal[DEMO_LAYERS]] = Field(
        ["block1", "block2", "block3"], description="efficientnet_lite0: blocks whose pooled outputs are concatenated"
    )
    seed: int = 0
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    precision: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="float32 (UnivFD's features) | float16 (GPU) | bfloat16 (GPU, or a CPU with native bf16)")
    batch_size: PositiveInt = 64
    loader_workers: Annotated[int, Field(ge=0)] = Field(1, description="processes decoding images; 0 = in the main process")
    store: str | None = Field(None, description="the resumable per-image feature store (outside DVC's outputs); "
                                              "null = $FAKEDETECT_STORE, else the user's cache folder")
    imports: dict[str, Annotated[list[ImportSource], Field(min_length=1)]] = Field(
        {}, max_length=1, description="features computed elsewhere, under one name: {name: [entries]}; "
        "they replace the images (top-level `images: []`)")
    engine: Literal["local", "ray"] = Field(
        "local", description="local: this process and its loader processes | ray: a Ray Data pipeline (extract.ray)")
    ray: RayParams = RayParams()

    @property
    def source(self) -> Literal["backbone", "import"]:
        """Where the features come from: the backbone encoding the images, or extract.imports."""
        return "import" if self.imports else "backbone"

    @property
    def imported(self) -> tuple[str, list[ImportSource]]:
        """The imported features' name and entries."""
        return next(iter(self.imports.items()))

    @model_validator(mode="after")
    def _consistent(self):
        if not self.layers:
            raise ValueError("layers must name at least one block")
        return self


# ----------------------------------------------------------------------------- tsne


class TsneParams(Section):
    max_points: Annotated[int, Field(ge=10)] = 2000
    perplexity: Annotated[float, Field(gt=0)] = 30.0
    seed: int = 0
    splits: list[Literal[SPLITS]] = ["train", "test"]
# ------------------------------------------------------------------------ nn_eval


class NnParams(Section):
    """Exact cosine nearest neighbour against the bank of training features."""

    k: PositiveInt = Field(1, description="neighbours; 1 = the notebook's and UnivFD's choice; majority vote for k > 1")
    chunk_size: Annotated[int, Field(ge=64)] = Field(
        4096, description="rows per block on each side of the similarity matrix: bounds the memory of the search"
    )
    backend: Literal["numpy", "faiss"] = Field(
        "numpy", description="numpy: chunked matrix products | faiss: IndexFlatIP (holds a normalised copy of the bank)"
    )


# ------------------------------------------------------------ linear_train / linear_eval


class FcnnRecipe(Section):
    """The notebook's Keras FCNN: Dense(units, relu) -> Dense(1, sigmoid), Adam, binary cross-entropy."""

    units: PositiveInt = 768
    batch_size: PositiveInt = 30
    learning_rate: Annotated[float, Field(gt=0)] = 1e-3
    epochs: PositiveInt = 7


class LinearProbeRecipe(Section):
    """UnivFD's linear probe: one sigmoid unit on the features, AdamW, early stopping with lr drops."""

    batch_size: PositiveInt = 256
    learning_rate: Annotated[float, Field(gt=0)] = 1e-4
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    patience: PositiveInt = Field(5, description="epochs without improvement before the lr is divided by 10")
    min_delta: Annotated[float, Field(ge=0)] = Field(0.001, description="smallest accuracy gain that counts")
    min_lr: Annotated[float, Field(gt=0)] = Field(1e-6, description="training stops when the lr would fall below")
    epochs: PositiveInt = Field(100, description="at most this many epochs (UnivFD's niter)")


class LinearParams(Section):
    head: Literal["fcnn", "linear_probe"] = "fcnn"
    seed: int = 0
    fcnn: FcnnRecipe = FcnnRecipe()
    linear_probe: LinearProbeRecipe = LinearProbeRecipe()
    external_head: str | None = Field(
        None, description="linear_eval: score with this UnivFD-format head (torch.save of {'weight': [1, D], "
        "'bias': [1]}) instead of the trained one"
    )

    @property
    def recipe(self) -> FcnnRecipe | LinearProbeRecipe:
        return self.fcnn if self.head == "fcnn" else self.linear_probe


# ---------------------------------------------------------------------- attribution

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


# ----------------------------------------------------------------------- robustness


class Perturbation(Section):
    """One grid point: the keys it names are applied to the original test image in a fixed order,
    blur, then resize, then JPEG (UnivFD blurs before it compresses); a key it omits is not applied."""

    blur: Annotated[float, Field(ge=0.0)] | None = Field(
        None, description="Gaussian sigma, per channel on the uint8 array (scipy.ndimage.gaussian_filter)")
    resize: Annotated[float, Field(gt=0.0, le=8.0)] | None = Field(
        None, description="scale factor (Pillow's bicubic, antialiased)")
    jpeg: Annotated[int, Field(ge=1, le=100)] | None = Field(None, description="PIL JPEG quality, encoded in memory")

    @model_validator(mode="after")
    def _names_one(self):
        if self.blur is None and self.resize is None and self.jpeg is None:
            raise ValueError("a perturbation names at least one of blur, resize, jpeg")
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
            key = (perturbation.blur, perturbation.resize, perturbation.jpeg)
            if key in seen:
                raise ValueError(f"perturbations.{i} repeats an earlier grid point")
            seen.add(key)
        return self


# ------------------------------------------------------------------------- the file


IMAGE_SOURCES = ("demo", "datasets")


class Params(Section):
    images: list[Literal[IMAGE_SOURCES]] = Field(
        ["demo"], max_length=1, description="the image stages' data: [demo] (ingest.demo) | [datasets] "
        "(ingest.datasets) | [] = no image stages: the features come from extract.imports")
    ingest: IngestParams = IngestParams()
    preprocess: PreprocessParams = PreprocessParams()
    extract: ExtractParams = ExtractParams()
    tsne: TsneParams = TsneParams()
    nn: NnParams = NnParams()
    linear: LinearParams = LinearParams()
    attribution: AttributionParams = AttributionParams()
    robustness: RobustnessParams = RobustnessParams()

    @model_validator(mode="after")
    def _one_input(self):
        if self.images and self.extract.imports:
            raise ValueError(f"images is {self.images} and extract.imports names {list(self.extract.imports)}: "
                             "imported features replace the images, so set images: [] (as the profile "
                             "notebook_features does), or empty extract.imports to encode the images")
        if not self.images and not self.extract.imports:
            raise ValueError("images is [] and extract.imports is empty: the pipeline needs images to encode "
                             "([demo] or [datasets]) or features to import")
        if self.images == ["datasets"] and not self.ingest.datasets:
            raise ValueError("images is [datasets] but ingest.datasets is empty: list at least one dataset root")
        return self

    @property
    def image_source(self) -> str | None:
        """The one entry of `images` (demo or datasets), or None when the features are imported."""
        return self.images[0] if self.images else None


class ParamsError(UserError):
    """params.yaml is missing, unreadable or does not fit the schema."""


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (misspelt?)"
    got = error.get("input")
    got = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{key}: {error['msg']}{got}" if key else error["msg"]  # no key: a check across sections


def describe_errors(exc: ValidationError) -> str:
    return "\n  ".join(_describe(e) for e in exc.errors())


def load_params(path: str | os.PathLike = PARAMS_FILE) -> Params:
    """Read and validate the whole params file; raise ParamsError naming every bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run stages from the project root") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(f"{path} does not fit the schema:\n  " + describe_errors(exc)) from None

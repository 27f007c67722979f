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

from fakedetect import atomic
from fakedetect.stage import UserError

PARAMS_FILE = "params.yaml"
PROFILES_DIR = "profiles"

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
Workers = Annotated[int, Field(ge=0, description="worker processes; 0 = one per CPU core")]


class Section(BaseModel):
    """A params section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- ingest

LAYOUTS = ("wang2020", "cnndetection_test", "univfd_diffusion", "generic")
SPLITS = ("train", "val", "test")
FAMILIES = ("real", "gan", "diffusion", "other")
DEMO_FAMILIES = ("upsample_nearest", "transposed_conv", "noise_denoise")


class DatasetSource(Section):
    """One dataset root and how to read it (DESIGN §3)."""

    layout: Literal[LAYOUTS]
    root: str
    split: Literal[SPLITS] = "test"
    classes: list[str] | None = Field(
        None, description="class folders to keep (wang2020 and class-split test sets); null = all"
    )
    sets: list[str] | None = Field(None, description="test sets (generator folders) to keep; null = all")
    name: str | None = Field(None, description="generic layout: test-set name; default the folder name")
    family: Literal[FAMILIES] | None = Field(
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
    train_family: Literal[DEMO_FAMILIES] = "upsample_nearest"
    test_families: list[Literal[DEMO_FAMILIES]] = list(DEMO_FAMILIES)
    controls: bool = Field(True, description="add the real-only blurred and JPEG-q80 control test sets")


class IngestParams(Section):
    source: Literal["demo", "datasets"] = "demo"
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

    @model_validator(mode="after")
    def _datasets_named(self):
        if self.source == "datasets" and not self.datasets:
            raise ValueError("source is 'datasets' but ingest.datasets is empty: list at least one dataset root")
        return self


# ----------------------------------------------------------------------- preprocess


class NotebookProtocol(Section):
    """The notebook project's training preprocessing (DESIGN §4)."""

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
    family: Literal[FAMILIES] | None = Field(None, description="default: looked up from the generator")

    @model_validator(mode="after")
    def _consistent(self):
        if self.rows is not None and self.rows[0] >= self.rows[1]:
            raise ValueError(f"rows must be [start, stop) with start < stop, got {list(self.rows)}")
        if (self.split == "test") != bool(self.test_set):
            raise ValueError("test rows need a test_set name, train and val rows must not have one")
        return self


class ExtractParams(Section):
    source: Literal["backbone", "import"] = "backbone"
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
    store: str = Field(".cache/features", description="the resumable per-image feature store (outside DVC's outputs)")
    imports: list[ImportSource] = []

    @model_validator(mode="after")
    def _consistent(self):
        if self.source == "import" and not self.imports:
            raise ValueError("source is 'import' but extract.imports is empty: list at least one features file")
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
    """Exact cosine nearest neighbour against the bank of training features (DESIGN §4)."""

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
    epochs: PositiveInt | None = Field(None, description="overrides the head's epochs; null = the head's recipe")
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

    @property
    def n_epochs(self) -> int:
        return self.epochs or self.recipe.epochs


# ---------------------------------------------------------------------- attribution

RESNET_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
RESNET_STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
DEMO_TEST_SETS = ["upsample_nearest", "transposed_conv", "noise_denoise"]


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
    enabled: bool = False


class GroupSplitParams(Section):
    """How a set used for both training and testing is split without leakage."""

    group_by: Literal["category", "image"] = Field(
        "category", description="category: the class folder (the source photo in the demo); image: the file"
    )
    test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.34
    val_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.25


class AttributionParams(Section):
    """Defaults: the notebook's model (ResNet-50, ImageNet weights, first layers frozen) trained
    with CNNDetection's recipe (Adam, lr 1e-4, early stopping); the demo's levels."""

    seed: int = 0
    arch: Literal[RESNET_ARCHS] = "resnet50"
    weights: str = Field("imagenet", description="imagenet (torchvision's DEFAULT weights) | none | path to a state dict")
    freeze: list[Literal[RESNET_STAGES]] = Field(["stem", "layer1"], description="stages whose weights stay as loaded")
    reuse_frozen: bool = Field(True, description="compute the frozen leading stages once per image")
    crop_size: Annotated[int, Field(ge=32)] | None = Field(None, description="training crop (pixels); null = whole image")
    crops_per_image: PositiveInt = Field(1, description="random crops of each training image per epoch")
    batch_size: PositiveInt = 32
    lr: Annotated[float, Field(gt=0.0)] = 1e-4
    max_epochs: PositiveInt = 50
    patience: PositiveInt = Field(5, description="epochs without a better validation accuracy before stopping")
    class_balance: bool = Field(True, description="weight the loss so that each class counts equally")
    threads: PositiveInt = Field(2, description="torch threads: the numbers depend on the count (the gradients are summed over them)")
    split: GroupSplitParams = GroupSplitParams()
    level1: LevelParams = LevelParams(
        train=Selection(sets=["train"]), val=Selection(sets=["val"]),
        test=Selection(sets=DEMO_TEST_SETS + ["real_blur", "real_jpeg80"]))
    level2: LevelParams = LevelParams(train=Selection(sets=DEMO_TEST_SETS), test=Selection(sets=DEMO_TEST_SETS))
    level3: Level3Params = Level3Params(train=Selection(sets=DEMO_TEST_SETS), test=Selection(sets=DEMO_TEST_SETS))

    @model_validator(mode="after")
    def _crop_fits(self):
        if self.crop_size is not None and self.crop_size % 32:
            raise ValueError(f"crop_size must be a multiple of 32 (the network's stride), got {self.crop_size}")
        return self


# ------------------------------------------------------------------------- the file


class Params(Section):
    ingest: IngestParams = IngestParams()
    preprocess: PreprocessParams = PreprocessParams()
    extract: ExtractParams = ExtractParams()
    tsne: TsneParams = TsneParams()
    nn: NnParams = NnParams()
    linear: LinearParams = LinearParams()
    attribution: AttributionParams = AttributionParams()


class ParamsError(UserError):
    """params.yaml is missing, unreadable or does not fit the schema."""


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (misspelt?)"
    got = error.get("input")
    got = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{key}: {error['msg']}{got}"


def _describe_all(exc: ValidationError) -> str:
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
        raise ParamsError(f"{path} does not fit the schema:\n  " + _describe_all(exc)) from None


def _merge(base: dict, overlay: dict) -> None:
    """Overlay values onto base in place: mappings merge key by key, anything else replaces."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def apply_profile(name: str, path: str | os.PathLike = PARAMS_FILE, profiles: str | os.PathLike = PROFILES_DIR) -> Path:
    """Write profiles/<name>.yaml's values into params.yaml, keeping its comments and every other
    value; the result is validated before it replaces the file. Returns the profile's path."""
    from ruamel.yaml import YAML

    profile = Path(profiles) / f"{name}.yaml"
    if not profile.is_file():
        known = sorted(p.stem for p in Path(profiles).glob("*.yaml"))
        raise ParamsError(f"no profile '{name}' in {profiles}/; available: {', '.join(known) or 'none'}")
    yaml_rt = YAML()
    document = yaml_rt.load(Path(path).read_text())
    _merge(document, yaml_rt.load(profile.read_text()) or {})
    try:
        Params.model_validate(document)
    except ValidationError as exc:
        raise ParamsError(f"profile {profile} does not fit the schema:\n  " + _describe_all(exc)) from None
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            yaml_rt.dump(document, f)
    return profile


def workers(n: int) -> int:
    """Resolve a `workers` param: 0 means one per CPU core."""
    return n or os.cpu_count() or 1

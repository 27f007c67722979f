"""Params of extract_clip and import_features: the backbone, the engine, the feature store, imported
files."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fakedetect import vocabulary
from fakedetect.params.base import PositiveInt, Section
from fakedetect.params.data import SPLITS


DEMO_LAYERS = tuple(f"block{i}" for i in range(7)) + ("head",)
DEMO_DEFAULT_LAYERS = ("block1", "block2", "block3")  # efficientnet_lite0's features when extract.layers is null
LAYER_NAME = r"^(block\d+|head|final)$"


class CropPolicy(Section):
    """How a test image becomes the backbone's input (docs/crop_policies.md "The policies"):
    center = UnivFD's centre crop; tiles = the mean feature of `tiles` crops of the full-resolution
    image; resize = the whole image resized to the crop size. A detector's features spec may embed it."""

    policy: Literal["center", "tiles", "resize"] = Field(
        "center", description="center (UnivFD's) | tiles (mean of several full-resolution crops) | resize (whole image)")
    tiles: PositiveInt = Field(4, description="tiles: crops per image")
    placement: Literal["grid", "seeded"] = Field(
        "grid", description="tiles: evenly spread over the image (grid) or at seeded random positions (seeded)")
    seed: int = Field(0, description="tiles with placement seeded: the positions' seed (with the image's SHA-256)")


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
    workers_write: bool = Field(False, description="encoders write their shards into the store themselves (a file "
                                                   "system every node shares); the driver only indexes them")


class ExtractParams(Section):
    model: str = Field("efficientnet_lite0", description="efficientnet_lite0 (the offline demo) or an OpenCLIP architecture")
    pretrained: str | None = Field("imagenet", description="open_clip tag, local checkpoint path, or null (seeded random init)")
    layers: list[Annotated[str, Field(pattern=LAYER_NAME)]] | None = Field(
        None, description="null = the backbone's default features | efficientnet_lite0: blocks whose pooled outputs "
        "are concatenated (block0..block6, head) | OpenCLIP ViT: block0..block{N-1} (CLS token after that "
        "transformer block), final (encode_image), concatenated in network order")
    seed: int = 0
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    precision: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="float32 (UnivFD's features) | float16 (GPU) | bfloat16 (GPU, or a CPU with native bf16)")
    batch_size: PositiveInt = 64
    loader_workers: Annotated[int, Field(ge=0)] = Field(1, description="processes decoding images; 0 = in the main process")
    store: str | None = Field(None, description="the resumable per-image feature store (outside DVC's outputs); "
                                              "null = $FAKEDETECT_STORE, else the user's cache folder")
    store_dtype: Literal["float32", "float16"] = Field(
        "float32", description="dtype of the rows in the store (float16 halves its size); features come back float32")
    imports: dict[str, Annotated[list[ImportSource], Field(min_length=1)]] = Field(
        {}, max_length=1, description="features computed elsewhere, under one name: {name: [entries]}; "
        "they replace the images (top-level `images: []`)")
    engine: Literal["local", "ray"] = Field(
        "local", description="local: this process and its loader processes | ray: a Ray Data pipeline (extract.ray)")
    ray: RayParams = RayParams()
    test_crop: CropPolicy = Field(CropPolicy(), description="how the test split's images are cropped "
                                  "(docs/crop_policies.md \"The policies\"); train and val rows are centre-cropped")

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
        if self.layers is not None:
            if not self.layers:
                raise ValueError("extract.layers must name at least one block (or be null for the backbone's default)")
            unknown = [name for name in self.layers if name not in DEMO_LAYERS]
            if self.model == "efficientnet_lite0" and unknown:
                raise ValueError(f"extract.layers: {', '.join(unknown)} not a block of efficientnet_lite0; "
                                 f"valid: {', '.join(DEMO_LAYERS)}")
        return self

    @property
    def demo_layers(self) -> list[str]:
        """efficientnet_lite0's blocks, in network order (its default when extract.layers is null)."""
        return sorted(set(self.layers or DEMO_DEFAULT_LAYERS), key=DEMO_LAYERS.index)

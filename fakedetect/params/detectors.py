"""Params of the detectors: nn_eval's k-NN, the linear stages' heads, and the registry's detectors
(`detectors`)."""
from __future__ import annotations

import importlib
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from fakedetect.params.base import PositiveInt, Section


class IvfParams(Section):
    """nn.backend faiss_ivf: an inverted-file index (docs/capacity.md "Approximate search")."""

    nlist: PositiveInt = Field(1024, description="k-means cells (capped at bank rows / 39, faiss's minimum sample per cell)")
    nprobe: PositiveInt = Field(32, description="cells searched per query: more = higher recall, slower")
    pq_bytes: Annotated[int, Field(ge=0)] = Field(
        0, description="0 = flat codes (the rows themselves) | bytes per row of a product-quantizer code (divides the dimension)")
    refine: Annotated[int, Field(ge=0)] = Field(
        0, description="PQ codes: candidates per class re-ranked by their exact rows (read from the bank) | 0 = none")
    train_rows: PositiveInt = Field(50_000, description="seeded sample of the bank the cells (and PQ) are trained on")
    recall_queries: PositiveInt = Field(1000, description="seeded sample of queries whose recall@1 against exact search is reported")
    seed: int = 0


class NnParams(Section):
    """Cosine nearest neighbour against the bank of training features: exact, or approximate (faiss_ivf)."""

    k: PositiveInt = Field(1, description="neighbours; 1 = the notebook's and UnivFD's choice; majority vote for k > 1")
    chunk_size: Annotated[int, Field(ge=64)] = Field(
        4096, description="rows per block on each side of the similarity matrix: bounds the memory of the search"
    )
    backend: Literal["numpy", "faiss", "faiss_ivf"] = Field(
        "numpy", description="numpy: chunked matrix products | faiss: IndexFlatIP (holds a normalised copy of the bank) "
                             "| faiss_ivf: approximate, IVF (nn.ivf); its recall@1 is measured and reported"
    )
    ivf: IvfParams = IvfParams()



class FcnnRecipe(Section):
    """The notebook's Keras FCNN: Dense(units, relu) -> Dense(1, sigmoid), Adam, binary cross-entropy."""

    units: PositiveInt = 768
    batch_size: PositiveInt = 30
    learning_rate: Annotated[float, Field(gt=0)] = 1e-3
    epochs: PositiveInt = 7


class LinearProbeRecipe(Section):
    """UnivFD's linear probe: one sigmoid unit on the features, AdamW, early stopping with lr drops."""

    standardize: bool = Field(
        True, description="first standardise each feature with the training rows' mean and std, kept in the saved "
                          "model: UnivFD's lr 1e-4 then learns on features of any scale (docs/detectors.md \"The linear probe's inputs\")")
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


# ------------------------------------------------------------------ the detector registry's params
# Each kind's params (docs/detectors.md "Adding a detector"); fakedetect/detectors/registry.py maps a
# kind to its class, which names one of these as its `Params`. A schema with a `recipe` reads its
# values from those params sections (one home per recipe): its `detectors` entries leave params empty.


class KnnDetectorParams(NnParams):
    recipe: ClassVar[tuple[str, ...]] = ("nn",)


class FcnnDetectorParams(FcnnRecipe):
    recipe: ClassVar[tuple[str, ...]] = ("linear.fcnn", "linear.seed")
    seed: int = 0


class LinearProbeDetectorParams(LinearProbeRecipe):
    recipe: ClassVar[tuple[str, ...]] = ("linear.linear_probe", "linear.seed")
    seed: int = 0


class BlocksDetectorParams(Section):
    """RINE-style: a learned softmax weighting over per-block features, a projection, a small head."""

    projection: PositiveInt = Field(128, description="width every block is projected to")
    units: PositiveInt = Field(64, description="the head's hidden units")
    epochs: PositiveInt = 30
    batch_size: PositiveInt = 64
    learning_rate: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    seed: int = 0


class NoiseSensitivityDetectorParams(Section):
    """RIGID-style, training-free: 1 - cosine(features of x, features of x + Gaussian noise)."""

    sigma: Annotated[float, Field(gt=0.0, le=1.0)] = Field(0.05, description="noise sigma in [0, 1] pixel units")
    seed: int = Field(0, description="with each image's SHA-256, seeds its noise")


class FusionDetectorParams(Section):
    members: Annotated[list[str], Field(min_length=1)] = Field(description="names of other configured detectors")
    C: Annotated[float, Field(gt=0)] = Field(1.0, description="inverse L2 strength of the logistic regression")


class ExternalHeadDetectorParams(Section):
    path: str = Field(description="a UnivFD-format head: torch.save of {'weight': [1, D], 'bias': [1]}")


DETECTOR_PARAMS = {"knn": KnnDetectorParams, "fcnn": FcnnDetectorParams, "linear_probe": LinearProbeDetectorParams,
                   "blocks": BlocksDetectorParams, "noise_sensitivity": NoiseSensitivityDetectorParams,
                   "fusion": FusionDetectorParams, "external_head": ExternalHeadDetectorParams}
FEATURE_VIEWS = "all | layer:<name> | layers"


def kind_schema(kind: str) -> type[Section]:
    """The params schema of a kind: a built-in one, or the `Params` of a `module:Class` kind (a kind
    defined outside the package, docs/detectors.md "Adding a detector"); KeyError if there is none."""
    if kind in DETECTOR_PARAMS:
        return DETECTOR_PARAMS[kind]
    module, _, name = kind.partition(":")
    if not module or not name:
        raise KeyError(kind)
    try:
        return getattr(importlib.import_module(module), name).Params
    except (ImportError, AttributeError) as exc:
        raise KeyError(f"{kind} ({exc})") from None


def recipe(schema: type[Section], params) -> dict | None:
    """The values of a schema with a `recipe` (paths into the whole params, e.g. linear.fcnn and
    linear.seed), or None for a schema whose params live in its `detectors` entry."""
    paths = getattr(schema, "recipe", None)
    if paths is None:
        return None
    values = {}
    for path in paths:
        found = params
        for part in path.split("."):
            found = getattr(found, part)
        values |= found.model_dump(mode="json") if isinstance(found, Section) else {path.rsplit(".", 1)[-1]: found}
    return values


def _below(key: str, message: str) -> PydanticCustomError:
    """An error about a key below the one being validated (params/__init__ names it in full)."""
    return PydanticCustomError("nested_key", "{message}", {"key": key, "message": message})


class DetectorSpec(Section):
    """One configured detector: its kind, the features it reads, the kind's params."""

    kind: str
    features: str = Field("all", description=f"{FEATURE_VIEWS}: the whole row, one block's slice, every block")
    params: dict[str, Any] = {}

    @model_validator(mode="after")
    def _check(self):
        try:
            schema = kind_schema(self.kind)
        except KeyError as exc:
            raise _below("kind", f"unknown kind {exc.args[0]!r}; kinds: {', '.join(DETECTOR_PARAMS)}, "
                                 "or module:Class") from None
        if not (self.features in ("all", "layers") or
                (self.features.startswith("layer:") and len(self.features) > len("layer:"))):
            raise _below("features", f"{self.features!r} is not one of {FEATURE_VIEWS}")
        try:
            schema.model_validate(self.params)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(["params", *map(str, error["loc"])])
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            raise _below(where, message) from None
        return self

    @property
    def settings(self) -> Section:
        """The kind's params, validated, with their defaults."""
        return kind_schema(self.kind).model_validate(self.params)


DEMO_DETECTORS = {
    "knn": DetectorSpec(kind="knn"),
    "fcnn": DetectorSpec(kind="fcnn"),
    "linear_probe": DetectorSpec(kind="linear_probe"),
    "blocks": DetectorSpec(kind="blocks", features="layers"),
    "noise_sensitivity": DetectorSpec(kind="noise_sensitivity", params={"sigma": 0.05}),
    "fusion": DetectorSpec(kind="fusion", params={"members": ["knn", "linear_probe", "blocks"]}),
}

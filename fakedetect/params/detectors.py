"""Params of the detectors: nn_eval's k-NN and the linear stages' heads."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from fakedetect.params.base import PositiveInt, Section


class IvfParams(Section):
    """nn.backend faiss_ivf: an inverted-file index (docs/capacity.md "Approximate search")."""

    nlist: PositiveInt = Field(1024, description="k-means cells (capped at bank rows / 39, faiss's minimum sample per cell)")
    nprobe: PositiveInt = Field(32, description="cells searched per query: more = higher recall, slower")
    pq_bytes: Annotated[int, Field(ge=0)] = Field(
        0, description="0 = flat codes (the rows themselves) | bytes per row of a product-quantizer code (divides the dimension)")
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

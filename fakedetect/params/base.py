"""The base of every params section, and the value types sections share."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
Workers = Annotated[int, Field(ge=0, description="worker processes; 0 = one per CPU core")]


class Section(BaseModel):
    """A params section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

"""The one typed schema of `params.yaml`, checked at the start of every stage.

A misspelt key, a wrong type or an out-of-range value stops the stage before any
work, with a message that names the key (`ingest.datasets.0.root`) and what was
expected. Each stage reads only its own section, but the whole file is validated
so that a typo anywhere is caught by the first stage that runs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from fakedetect.stage import UserError
from fakedetect.params.base import Section
from fakedetect.params.data import (AuditParams, BlurJpegProtocol, DatasetSource, DemoParams, IngestParams, LAYOUTS,
                                    NotebookProtocol, PreprocessParams, SPLITS)
from fakedetect.params.features import DEMO_LAYERS, CropPolicy, ExtractParams, ImportSource, RayParams
from fakedetect.params.detectors import (DEMO_DETECTORS, DETECTOR_PARAMS, DetectorSpec, FcnnRecipe, LinearParams,
                                        LinearProbeRecipe, NnParams, kind_schema, recipe)
from fakedetect.params.attribution import (AttributionParams, DEMO_TEST_SETS, FAKE_FAMILIES,
                                           FamilyLevelParams, GroupSplitParams, HierarchyParams, Level3Params,
                                           LevelParams, RESNET_ARCHS, RESNET_STAGES, Selection)
from fakedetect.params.evaluation import (PROTOCOLS, AlignedParams, EvaluationParams, Perturbation,
                                         RobustnessParams, TsneParams)

# Every section's schema, importable from here: `from fakedetect.params import ExtractParams`.
__all__ = [
    "AlignedParams", "AttributionParams", "AuditParams", "BlurJpegProtocol", "CropPolicy", "DEMO_DETECTORS",
    "DEMO_LAYERS", "DETECTOR_PARAMS", "DetectorSpec", "DEMO_TEST_SETS", "DatasetSource", "EvaluationParams",
    "PROTOCOLS",
    "DemoParams", "ExtractParams", "FAKE_FAMILIES", "FamilyLevelParams", "FcnnRecipe",
    "GroupSplitParams", "HierarchyParams", "ImportSource", "IngestParams", "LAYOUTS", "Level3Params",
    "LevelParams", "LinearParams", "LinearProbeRecipe", "NnParams", "NotebookProtocol", "PARAMS_FILE",
    "Params", "ParamsError", "Perturbation", "PreprocessParams", "RESNET_ARCHS", "RESNET_STAGES",
    "RayParams", "RobustnessParams", "SPLITS", "Section", "Selection", "TsneParams", "describe_errors",
    "kind_schema", "load_params", "recipe"
]

PARAMS_FILE = "params.yaml"


IMAGE_SOURCES = ("demo", "datasets")


class Params(Section):
    images: list[Literal[IMAGE_SOURCES]] = Field(
        ["demo"], max_length=1, description="the image stages' data: [demo] (ingest.demo) | [datasets] "
        "(ingest.datasets) | [] = no image stages: the features come from extract.imports")
    ingest: IngestParams = IngestParams()
    audit: AuditParams = AuditParams()
    preprocess: PreprocessParams = PreprocessParams()
    extract: ExtractParams = ExtractParams()
    tsne: TsneParams = TsneParams()
    nn: NnParams = NnParams()
    linear: LinearParams = LinearParams()
    attribution: AttributionParams = AttributionParams()
    robustness: RobustnessParams = RobustnessParams()
    aligned: AlignedParams = AlignedParams()
    evaluation: EvaluationParams = EvaluationParams()
    detectors: dict[str, DetectorSpec] = Field(
        DEMO_DETECTORS, description="name -> {kind, features, params}: the detectors the compare stage fits and "
        "compares (docs/detectors.md)")

    @model_validator(mode="after")
    def _one_input(self):
        if self.images and self.extract.imports:
            raise ValueError(f"images is {self.images} and extract.imports names {list(self.extract.imports)}: "
                             "imported features replace the images, so set images: [] (as the profile "
                             "notebook_features does), or empty extract.imports to encode the images")
        if not self.images and not self.extract.imports:
            raise ValueError("images is [] and extract.imports is empty: the pipeline needs images to encode "
                             "([demo] or [datasets]) or features to import")
        resolved = {}
        for name, spec in self.detectors.items():
            values = recipe(kind_schema(spec.kind), self)
            if values is not None and spec.params:
                raise ValueError(f"detectors.{name}.params: a {spec.kind} detector's recipe lives in params "
                                 f"{' and '.join(kind_schema(spec.kind).recipe)} (one home per recipe): leave "
                                 "its params empty ({})")
            resolved[name] = spec if values is None else spec.model_copy(update={"params": values})
            for member in getattr(spec.settings, "members", []):
                if member not in self.detectors or hasattr(self.detectors[member].settings, "members"):
                    raise ValueError(f"detectors.{name}.params.members: {member!r} is not a configured "
                                     "detector (nor may it be a fusion)")
        object.__setattr__(self, "detectors", resolved)  # each detector with its whole recipe
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
    if error["type"] == "nested_key":  # a check that names a key below the one it validates
        return f"{key}.{error['ctx']['key']}: {error['msg']}"
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

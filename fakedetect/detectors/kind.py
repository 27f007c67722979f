"""What a detector kind declares about itself (docs/detectors.md "Adding a detector"): the registry,
compare, predict, serve and robustness read these attributes and never test a kind's name.

A kind subclasses Kind and defines `fit(train, y_train, val, y_val)`, `predict(inputs)` -> (P(fake),
ranking score) or (P(fake), ranking score, decision), `state()` (numpy arrays, saved without pickle)
and `restore(arrays, folder)`; `Params` is its params schema (fakedetect.params.detectors).
"""
from __future__ import annotations

# When a kind runs, lowest first, in one process: torch-side kinds before any Keras one (torch
# training after TensorFlow has loaded crashes the process), kinds that read other detectors' scores last.
TORCH_SIDE, KERAS, READS_MEMBERS = 0, 10, 20


class Kind:
    Params = None  # its params schema: a fakedetect.params.base.Section
    order = TORCH_SIDE  # see TORCH_SIDE, KERAS, READS_MEMBERS; ties keep the params' order
    # True: fit reads the validation split, so its validation scores are cross-fitted (registry.fit)
    fits_on_validation = False
    # Why its validation figures are not out-of-sample though it is not cross-fitted (None: they are):
    # predict's default is chosen among out-of-sample figures only.
    in_sample = None
    # The published table its figures stand beside (fakedetect.evaluation.published), or None.
    published = None
    p_fake = "the detector's probability, also its ranking score"  # what its P(fake) is, for the report
    title = None  # what serve's page calls it (None: the kind's name)

    def __init__(self, params, name: str):
        self.params, self.name = params, name

    @classmethod
    def published_as(cls, settings) -> str | None:
        return cls.published

    @classmethod
    def members(cls, settings) -> list[str]:
        """The detectors whose ranking scores it reads (inputs.members)."""
        return []

    @classmethod
    def with_members(cls, params: dict, members: list[str]) -> dict:
        """Its params fusing only these of its members (those that ran)."""
        return params

    @classmethod
    def noisy_views(cls, settings) -> list[tuple[float, int]]:
        """The (sigma, seed) of each noisy view of the images it reads (inputs.noisy[sigma])."""
        return []

    @classmethod
    def cannot_fit(cls, settings, y_train, y_val) -> str | None:
        """Why it cannot be fitted on splits with these labels (None: it can)."""
        return None

    def report_extras(self) -> dict:
        """Figures of the fitted model for its entry in reports/compare.json."""
        return {}

    def search_report(self, queries) -> dict | None:
        """An approximate search's report on these queries (recall against exact search), or None."""
        return None

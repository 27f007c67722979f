"""Whether a workspace holds a trained run: the checks `fakedetect predict` and `serve` make before
they load torch and TensorFlow, so that a workspace without one is told so at once, not after
seconds of imports."""
from __future__ import annotations

from pathlib import Path

from fakedetect.artifacts import ATTRIBUTION_MODELS, FEATURES, LINEAR_MODEL, LINEAR_REPORT, NN_REPORT
from fakedetect.stage import UserError

LOCK = "dvc.lock"  # the params every stage of the last `dvc repro` ran with

# What the server reads, in pipeline order, with the stage that writes it (`dvc repro STAGE`).
SERVED = ((LOCK, "the whole pipeline (`make repro`)"), (FEATURES, "extract_clip"), (NN_REPORT, "nn_eval"),
          (LINEAR_MODEL, "linear_train"), (LINEAR_REPORT, "linear_eval"),
          (f"{ATTRIBUTION_MODELS}/model.json", "resnet_attribution"))


def require_lock(project: Path) -> Path:
    """The run's dvc.lock; fail, saying how to make one, when there is none."""
    lock = project / LOCK
    if not lock.is_file():
        raise UserError(f"no trained run in {project}: run `make repro` (or `dvc pull` the artifacts) first")
    return lock


def require_served(project: Path) -> None:
    """Fail, naming the first stage to run, when the workspace holds no complete trained run to serve."""
    for artifact, stage in SERVED:
        if not (project / artifact).exists():
            raise UserError(f"{project / artifact} is missing: no trained run to serve in {project}; run "
                            f"{stage if stage.startswith('the') else f'the {stage} stage (`dvc repro {stage}`)'} "
                            "first, or `dvc pull` the artifacts")

"""Training curves through DVCLive, the DVC ecosystem's logger: per-epoch loss and accuracy
(training and validation), and the final and best figures, in the files that `dvc exp show`,
`dvc plots` and editor integrations read (`<folder>/metrics.json`, one TSV per curve under
`<folder>/plots/metrics/`).

Names follow DVCLive's Keras integration (`train/loss`, `eval/accuracy`, ...), optionally under
a prefix (`level1/train/loss`); the x axis is DVCLive's step, the epoch counted from 0. The
pipeline's guarantees hold: no timestamps (two runs give byte-identical files), values rounded
to 6 decimals (as the other metrics), no DVC Studio reporting, no report page, and none of
DVCLive's own dvc.yaml or experiment saving: the pipeline's dvc.yaml declares the files.
"""
from __future__ import annotations

import os

from dvclive import Live

DECIMALS = 6


class TrainingLog:
    """One DVCLive folder. Call `epoch()` once per epoch (or give `keras_callback()` to
    `model.fit`), then `close()` with the best epoch's figures."""

    def __init__(self, folder: str | os.PathLike):
        # Whatever the user's DVC config says (a Studio token), nothing is sent anywhere.
        os.environ["DVC_STUDIO_OFFLINE"] = "true"
        self.live = Live(str(folder), report=None, save_dvc_exp=False, dvcyaml=False)

    def epoch(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        """Log one epoch's figures (names like `train/loss`) at `step` (the epoch, from 0)."""
        self.live.step = step
        for name, value in values.items():
            self.live.log_metric(f"{prefix}{name}", round(float(value), DECIMALS))
        self.live.next_step()

    def keras_callback(self):
        """DVCLive's Keras callback on this log, its values rounded as `epoch()` rounds them."""
        from dvclive.keras import DVCLiveCallback

        class Rounded(DVCLiveCallback):
            def on_epoch_end(self, epoch, logs=None):
                super().on_epoch_end(epoch, {k: round(float(v), DECIMALS) for k, v in (logs or {}).items()})

            def on_train_end(self, logs=None):
                pass  # close() ends the log, once the best figures are in

        return Rounded(live=self.live)

    def close(self, figures: dict[str, float | int]) -> None:
        """Record the final summary: `figures` (the best epoch's, the number of epochs) beside
        the last epoch's values that DVCLive keeps. DVCLive's running step counter is left out of the
        summary: with a prefix per level it would only tell the last level's last epoch."""
        for name, value in figures.items():
            self.live.log_metric(name, round(value, DECIMALS) if isinstance(value, float) else value, plot=False)
        self.live.summary.pop("step", None)
        self.live.step = None  # DVCLive writes no step into the summary then
        self.live.end()

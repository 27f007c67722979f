"""Stage preprocess: data/manifest.csv -> 224x224 images under data/preprocessed/ and their
manifest data/preprocessed.csv; plots/preprocess.png shows a few images before and after."""
import logging
import time

from fakedetect import atomic, stage
from fakedetect.data import images, manifests, preprocess
from fakedetect.evaluation import plots
from fakedetect.artifacts import MANIFEST, PREPROCESSED, PREPROCESSED_MANIFEST, PREPROCESS_PLOT
from fakedetect.params import load_params

log = logging.getLogger("preprocess")


def _examples(rows, per_split: int = 3):
    """A few training images of each class (blurred and not) and a few test images."""
    chosen = []
    for split in ("train", "test"):
        group = rows[(rows.split == split) & (rows.status == "ok")]
        picks = group.groupby(["label", "augmentation"], sort=True).head(1).head(per_split)
        chosen += [(images.load(r.path).rgb, images.load(r.image).rgb,
                    f"{'fake' if r.label else 'real'} {split}\n{r.augmentation}") for r in picks.itertuples()]
    return chosen


def main() -> None:
    p = load_params().preprocess
    manifest = manifests.read_manifest(MANIFEST)
    n_workers = stage.worker_count(p.workers)
    start = time.perf_counter()
    rows = preprocess.preprocess(manifest, p, PREPROCESSED, n_workers)
    seconds = time.perf_counter() - start
    atomic.write_csv(PREPROCESSED_MANIFEST, rows)
    plots.before_after(_examples(rows), PREPROCESS_PLOT,
                       f"preprocessing: train = {p.train_protocol}, test = centre crop {p.size}")
    skipped = int((rows.status != "ok").sum())
    log.info("%d images (%d skipped) in %.1f s: %.0f images/s with %d workers",
             len(rows), skipped, seconds, len(rows) / max(seconds, 1e-9), n_workers)


if __name__ == "__main__":
    stage.run(main)

"""Stage tsne: data/features/ -> plots/tsne.png (real vs fake by colour, generator by marker)
and plots/tsne.csv (the 2-D coordinates of a seeded, class-balanced sample)."""
import logging

from fakedetect.runtime import cpu_numerics  # noqa: F401  first: pins the CPU instruction sets before numpy and torch load
from fakedetect import atomic, stage
from fakedetect.features import feature_files
from fakedetect.evaluation import plots, tsne
from fakedetect.artifacts import FEATURES, TSNE_COORDS, TSNE_PLOT
from fakedetect.params import load_params

log = logging.getLogger("tsne")


def main() -> None:
    params = load_params()
    p = params.tsne
    matrix, rows = feature_files.load_features(FEATURES)
    # an image in several test sets' shared real pool is one point
    keep = rows.split.isin(p.splits) & ~(rows.image_sha256.ne("") & rows.image_sha256.duplicated())
    rows, matrix = rows[keep].reset_index(drop=True), matrix[keep.to_numpy()]
    if len(rows) < 10:
        raise stage.UserError(f"tsne.splits: {p.splits} select only {len(rows)} distinct feature rows; need at least 10")
    chosen = tsne.balanced_sample(rows, p.max_points, p.seed)
    rows = rows.iloc[chosen].reset_index(drop=True)
    coords = tsne.embed(matrix[chosen], p.perplexity, p.seed)
    rows["x"], rows["y"] = coords[:, 0].round(4), coords[:, 1].round(4)
    atomic.write_csv(TSNE_COORDS, rows[["id", "split", "test_set", "label", "generator", "family", "x", "y"]])
    model = params.extract.model + (f" ({params.extract.pretrained})" if params.extract.pretrained else " (random init)")
    plots.tsne_scatter(coords, rows.label.to_numpy(), rows.generator.to_numpy(), TSNE_PLOT,
                       f"t-SNE of {model} features: {len(rows)} points, perplexity {p.perplexity:g}")
    log.info("%d points -> %s, %s", len(rows), TSNE_PLOT, TSNE_COORDS)


if __name__ == "__main__":
    stage.run(main)

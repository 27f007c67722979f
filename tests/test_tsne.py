"""The tsne stage: a seeded, class-balanced sample, a deterministic embedding, the plot and CSV."""

import numpy as np
import pandas as pd
import pytest
import yaml

from fakedetect.features import feature_files
from fakedetect.evaluation import tsne
from helpers import run_stage, stage_env


@pytest.mark.parametrize("sizes, total, shares", [
    ([10, 10], 6, [3, 3]),
    ([2, 50, 50], 30, [2, 14, 14]),
    ([5, 6], 100, [5, 6]),
    ([7, 7, 7], 10, [4, 3, 3]),
    ([0, 9], 4, [0, 4]),
])
@pytest.mark.fast
def test_fair_shares(sizes, total, shares):
    assert tsne.fair_shares(sizes, total) == shares


def synthetic_rows() -> pd.DataFrame:
    generators = ["real"] * 300 + ["a"] * 200 + ["b"] * 20 + ["c"] * 80
    return pd.DataFrame({"label": [0 if g == "real" else 1 for g in generators], "generator": generators})


@pytest.mark.fast
def test_balanced_sample_is_seeded_and_balanced():
    rows = synthetic_rows()
    chosen = tsne.balanced_sample(rows, 100, seed=3)
    picked = rows.iloc[chosen]
    assert picked.label.value_counts().to_dict() == {0: 50, 1: 50}
    assert picked.generator.value_counts().to_dict() == {"real": 50, "a": 17, "b": 17, "c": 16}
    assert list(chosen) == sorted(chosen) and len(set(chosen)) == 100
    np.testing.assert_array_equal(tsne.balanced_sample(rows, 100, seed=3), chosen)
    assert not np.array_equal(tsne.balanced_sample(rows, 100, seed=4), chosen)
    assert len(tsne.balanced_sample(rows, 10_000, seed=3)) == len(rows)  # 300 real, 300 fake
    fewer_fakes = tsne.balanced_sample(rows.iloc[:400], 10_000, seed=3)
    assert rows.iloc[fewer_fakes].label.value_counts().to_dict() == {0: 100, 1: 100}


def test_tsne_stage_writes_plot_and_coordinates(tmp_path):
    rng = np.random.default_rng(0)
    rows = synthetic_rows().assign(split="test", test_set="t", family="gan", category="", image="", image_sha256="")
    rows.loc[:49, "image_sha256"] = "f" * 64  # 50 rows of one image shared by several test sets: one point
    rows.insert(0, "id", range(len(rows)))
    matrix = (rng.normal(size=(len(rows), 16)) + 3 * rows.label.to_numpy()[:, None]).astype(np.float32)
    feature_files.save_features(tmp_path / "data" / "features", matrix, rows)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"tsne": {"max_points": 120, "perplexity": 15, "seed": 1}}))
    outputs = []
    for _ in range(2):
        result = run_stage("tsne", tmp_path, timeout=120, env=stage_env())
        assert result.returncode == 0, result.stderr
        outputs.append((tmp_path / "plots" / "tsne.csv").read_bytes())
    assert outputs[0] == outputs[1]  # seeded: the same coordinates
    coords = pd.read_csv(tmp_path / "plots" / "tsne.csv")
    assert len(coords) == 120 and coords.label.value_counts().to_dict() == {0: 60, 1: 60}
    assert (coords.id < 50).sum() <= 1  # the shared image counted once
    real, fake = coords[coords.label == 0], coords[coords.label == 1]  # separable features stay apart
    assert np.hypot(real.x.mean() - fake.x.mean(), real.y.mean() - fake.y.mean()) > coords[["x", "y"]].std().mean()
    assert (tmp_path / "plots" / "tsne.png").stat().st_size > 10_000

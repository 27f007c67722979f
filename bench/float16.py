"""float16 store rows against float32 on the notebook's real CLIP ViT-L/14 features
(../shared/fixtures/seed_clip_features, loaded as tests/test_reproduction.py loads them): the
1-NN accuracy on test.pt (published 75.3) and the FCNN's accuracy on test_cg, test1 and test_dm
(3 seeds each), with every feature rounded through float16 as a float16 store returns it; and
how many 1-NN decisions and scores change. Prints one `name: value` line per figure.
Usage: nice -n 10 python bench/float16.py [FIXTURES_FOLDER]. `--smoke`: 100 rows of random 16-dimensional features
in each fixture file's stead, one seed (seconds; the figures mean nothing).
"""
from __future__ import annotations

import torch  # noqa: I001  before TensorFlow (keras_heads): the reverse order segfaults

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakedetect.detectors import neighbours  # noqa: E402
from fakedetect.params import LinearParams  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "seed_clip_features"
SMOKE = "--smoke" in sys.argv
SEEDS = 1 if SMOKE else 3
ROWS = 100 if SMOKE else 1000  # of each fixture file
FAKES_FIRST, REALS_FIRST = np.repeat([1, 0], ROWS // 2), np.repeat([0, 1], ROWS // 2)
FCNN_SETS = {"test_cg": REALS_FIRST, "test1": FAKES_FIRST, "test_dm": REALS_FIRST}


def random_fixtures(folder: Path) -> Path:
    """Files named as the fixtures, of ROWS random 16-dimensional features each."""
    generator = torch.Generator().manual_seed(0)
    for name in ("fake", "real", "test", *FCNN_SETS):
        torch.save(torch.randn(ROWS, 16, generator=generator), folder / f"{name}.pt")
    return folder


def main() -> None:
    named = [arg for arg in sys.argv[1:] if arg != "--smoke"]
    if SMOKE:
        with tempfile.TemporaryDirectory() as folder:
            return measure(random_fixtures(Path(folder)))
    measure(Path(named[0]) if named else FIXTURES)


def measure(folder: Path) -> None:
    load = lambda name: torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True).numpy()[:ROWS]  # noqa: E731
    bank = np.concatenate([load("fake"), load("real")])  # fake.pt holds the real images (swapped names)
    bank_labels = np.repeat([0, 1], ROWS)
    half = lambda x: x.astype(np.float16).astype(np.float32)  # noqa: E731  what a float16 store returns
    print(f"fixture_dtype: {bank.dtype}")
    print(f"max_abs_rounding_error: {np.abs(half(bank) - bank).max():.2e}")  # 0: every value is a float16 value already
    test = load("test")
    nn = {}
    for dtype, f in (("float32", lambda x: x), ("float16", half)):
        found = neighbours.search(f(test), f(bank), bank_labels, k=1)
        nn[dtype] = found
        print(f"clip_1nn_test_acc_{dtype}: {100 * (found.predict(1) == FAKES_FIRST).mean():.2f}")
    print(f"clip_1nn_decisions_changed: {int((nn['float32'].predict(1) != nn['float16'].predict(1)).sum())}")
    print(f"clip_1nn_max_abs_score_diff: {np.abs(nn['float32'].score - nn['float16'].score).max():.2e}")
    from fakedetect.detectors import keras_heads

    for dtype, f in (("float32", lambda x: x), ("float16", half)):
        accuracies = {name: [] for name in FCNN_SETS}
        for seed in range(SEEDS):
            model, _ = keras_heads.train(f(bank), bank_labels, np.empty((0, bank.shape[1]), np.float32),
                                         np.empty(0, int), LinearParams(seed=seed))
            for name, labels in FCNN_SETS.items():
                accuracies[name].append(100 * ((keras_heads.predict(model, f(load(name))) > 0.5) == labels).mean())
        for name, values in accuracies.items():
            print(f"clip_fcnn_{name}_acc_{dtype}: {np.mean(values):.2f} (seeds {[round(float(a), 1) for a in values]})")


if __name__ == "__main__":
    main()

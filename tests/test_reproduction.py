"""The notebook project's published numbers, reproduced on its own CLIP ViT-L/14 features.

Labels as ../shared/fixtures/README.md gives them: fake.pt holds the REAL training
images and real.pt the FAKE ones (the file names are swapped); test.pt and test1.pt
list fakes first and carry a stray 1001st row, which is dropped.
"""
import numpy as np
import pytest
import torch

from fakedetect.evaluation import metrics, published
from fakedetect.detectors import neighbours
from fakedetect.params import LinearParams

FAKES_FIRST = np.repeat([1, 0], 500)
REALS_FIRST = np.repeat([0, 1], 500)
# test file -> (test-set name in the published table, labels)
TEST_FILES = {"test": ("notebook_glide_100", FAKES_FIRST), "test1": ("notebook_dalle", FAKES_FIRST),
              "test_cg": ("notebook_cyclegan", REALS_FIRST), "test_dm": ("notebook_glide_100_dm", REALS_FIRST)}


@pytest.fixture
def seed_features(shared_fixtures):
    folder = shared_fixtures / "seed_clip_features"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")

    def load(name):
        return torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True).numpy()[:1000]

    bank = np.concatenate([load("fake"), load("real")])
    bank_labels = np.repeat([0, 1], 1000)
    tests = {name: (load(file), labels) for file, (name, labels) in TEST_FILES.items()}
    return bank, bank_labels, tests


@pytest.mark.fast
def test_one_nearest_neighbour_gives_the_published_75_3(seed_features):
    bank, bank_labels, tests = seed_features
    features, labels = tests["notebook_glide_100"]
    predicted = neighbours.search(features, bank, bank_labels, k=1).predict(1)
    accuracy = metrics.set_metrics(labels, predicted, predicted)["acc"]
    assert published.detection("notebook_nn", "notebook_glide_100") == (75.3, None)
    assert 75.2 <= accuracy <= 75.3


@pytest.mark.fast
def test_fcnn_gives_the_published_accuracies_within_2_5_points(seed_features):
    from fakedetect.detectors import keras_heads  # not at collection: TensorFlow before torchvision segfaults (docs/architecture.md "Environment facts worth knowing")

    bank, bank_labels, tests = seed_features
    accuracies = {name: [] for name in ("notebook_cyclegan", "notebook_dalle", "notebook_glide_100_dm")}
    for seed in range(3):
        model, _ = keras_heads.train(bank, bank_labels, np.empty((0, 768), np.float32), np.empty(0, int),
                                     LinearParams(seed=seed))
        for name, values in accuracies.items():
            features, labels = tests[name]
            values.append(100 * ((keras_heads.predict(model, features) > 0.5) == labels).mean())
    for name, values in accuracies.items():
        theirs, _ = published.detection("notebook_fcnn", name)
        print(f"{name}: seeds {[round(float(v), 1) for v in values]}, mean {np.mean(values):.2f}, published {theirs}")
        assert abs(np.mean(values) - theirs) <= 2.5, (name, values)

"""Which offline backbone the demo profile uses, by measurement on the demo set.

Candidates: OpenCLIP ViT-B-32 with random weights (no CLIP weights offline), and the packaged
ImageNet EfficientNet-Lite0: its final (head) features, single early/intermediate blocks, and
blocks 1-3 together (the default). For each: 1-NN (cosine, train bank) and logistic-regression
accuracy per test set, logistic-regression AP on the three fake families, the share of
real-only control images called real, and the means over the fake families. Classifiers are
fitted on the training split (the pipeline's setting) and, as a diagnostic, on the validation
split, whose images went through the same centre-crop protocol as the test images.

Needs `dvc repro preprocess`; features go through the stage's feature store, so a second run
only re-fits the classifiers. Prints `name: value` lines. `--smoke`: the EfficientNet head only, on two images
of each split, test set and label (seconds; the figures mean nothing).
"""
import logging
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fakedetect.features import backbones, extract
from fakedetect.data import manifests
from fakedetect.artifacts import PREPROCESSED_MANIFEST
from fakedetect.features.feature_store import FeatureStore, store_root
from fakedetect.params import ExtractParams, load_params

FAKE_SETS = ("upsample_nearest", "transposed_conv", "noise_denoise")
CONTROLS = ("real_blur", "real_jpeg80")
CANDIDATES = {
    "vit_b32_random": dict(model="ViT-B-32", pretrained=None),
    "effnet_head": dict(layers=["head"]),
    "effnet_block2": dict(layers=["block2"]),
    "effnet_block3": dict(layers=["block3"]),
    "effnet_block4": dict(layers=["block4"]),
    "effnet_blocks123": dict(layers=["block1", "block2", "block3"]),
}

SMOKE = "--smoke" in sys.argv
if SMOKE:
    CANDIDATES = {"effnet_head": CANDIDATES["effnet_head"]}


def scores(matrix: np.ndarray, rows, train_split: str) -> dict[str, float]:
    train = (rows.split == train_split).to_numpy()
    bank, bank_labels = matrix[train], rows.label.to_numpy()[train]
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000)).fit(bank, bank_labels)
    out = {}
    for test_set in FAKE_SETS + CONTROLS:
        mask = (rows.test_set == test_set).to_numpy()
        x, y = matrix[mask], rows.label.to_numpy()[mask]
        nearest = bank_labels[(unit(x) @ unit(bank).T).argmax(1)]
        p_fake = probe.predict_proba(x)[:, 1]
        out[f"{test_set} 1nn_acc"] = 100 * np.mean(nearest == y)
        out[f"{test_set} lr_acc"] = 100 * np.mean((p_fake > 0.5) == y)
        if test_set in FAKE_SETS:
            out[f"{test_set} lr_ap"] = 100 * average_precision_score(y, p_fake)
    for metric in ("1nn_acc", "lr_acc", "lr_ap"):
        out[f"mean_fake_sets {metric}"] = float(np.mean([out[f"{s} {metric}"] for s in FAKE_SETS]))
    return out


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    rows = manifests.read_manifest(PREPROCESSED_MANIFEST)
    rows = rows[rows.status == "ok"].reset_index(drop=True)
    if SMOKE:
        rows = rows.groupby(["split", "test_set", "label"], dropna=False).head(2).reset_index(drop=True)
    root = store_root(load_params().extract.store)
    for name, overrides in CANDIDATES.items():
        backbone = backbones.create(ExtractParams(**overrides))
        matrix, _ = extract.extract(rows, backbone, FeatureStore(root, backbone.identity), 64, 1)
        print(f"{name} dimension: {matrix.shape[1]}")
        for train_split in ("train", "val"):
            for key, value in scores(matrix, rows, train_split).items():
                print(f"{name} trained_on_{train_split} {key}: {value:.1f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

"""Score new images with a trained run of the pipeline: P(fake), the decisions, and for a fake
its family (GAN or diffusion).

Everything is read from the run's own artifacts: the params each stage ran with come from
`dvc.lock` (not from a params.yaml edited since), the backbone is rebuilt from them, the
head from `models/`, the calibrated threshold from the eval reports. A new image goes through
the same test protocol as the pipeline's test images (centre crop, then the backbone's
transform), so a preprocessed image scores exactly as the pipeline scored it.
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from fakedetect import attribution, augment, backbones, images
from fakedetect.artifacts import ATTRIBUTION_MODELS, FEATURES, LINEAR_MODEL, LINEAR_REPORT, NN_REPORT
from fakedetect.images import BadImage, Limits
from fakedetect.params import Params
from fakedetect.stage import UserError

LOCK = "dvc.lock"
REPORTS = {"linear": LINEAR_REPORT, "nn": NN_REPORT}  # the calibrated threshold of each classifier
log = logging.getLogger("predict")


@dataclass
class Prediction:
    path: str
    status: str  # ok | unreadable
    reason: str = ""
    p_fake: float | None = None
    fake_at_0_5: bool | None = None
    threshold: float | None = None  # calibrated on the validation split; None where the run has none
    fake: bool | None = None  # at the calibrated threshold (0.5 without one)
    family: str | None = None  # for images judged fake: gan or diffusion
    p_family: float | None = None
    extra: dict = field(default_factory=dict)


def run_params(project: Path) -> Params:
    """The params every stage of the last `dvc repro` ran with, as recorded in dvc.lock."""
    lock_path = project / LOCK
    if not lock_path.is_file():
        raise UserError(f"no trained run in {project}: run `make repro` (or `dvc pull` the artifacts) first")
    stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {})
    recorded = {}
    for stage in stages.values():
        recorded.update(stage.get("params", {}).get("params.yaml", {}))
    try:
        return Params.model_validate({k: v for k, v in recorded.items() if k in Params.model_fields})
    except Exception as exc:
        raise UserError(f"{LOCK} records params that this version cannot read ({exc}): run `make repro` again") from None


class ImagePaths(torch.utils.data.Dataset):
    """path -> (index, the image centre-cropped as the pipeline's test images, skip reason):
    decoded in loader processes. Only uint8 pixels cross to the main process, which derives
    both networks' inputs from them."""

    def __init__(self, paths: list[str], limits: Limits, size: int):
        self.paths, self.limits, self.size = paths, limits, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str]:
        try:
            rgb = images.load(self.paths[i], self.limits).rgb
        except BadImage as exc:
            return i, None, exc.reason
        return i, torch.from_numpy(np.array(augment.center_crop(rgb, self.size), copy=True)), ""


def _collate(items):
    good = [(i, pixels) for i, pixels, _ in items if pixels is not None]
    batch = torch.stack([pixels for _, pixels in good]) if good else None
    return [i for i, _ in good], batch, [(i, reason) for i, pixels, reason in items if pixels is None]


class Detector:
    """A trained run, loaded once, that scores batches of image files."""

    def __init__(self, project: str | Path = ".", classifier: str = "linear", family: bool = True):
        self.project = Path(project)
        self.classifier = classifier
        self.params = p = run_params(self.project)
        if p.extract.source != "backbone":
            raise UserError("the run's features were imported (extract.source: import): predict needs the backbone "
                            "that computes them; set extract.source: backbone and run `make repro`")
        self.backbone = backbones.create(p.extract)
        crop = self.backbone.transform.crop  # what the encoder is given, whatever preprocess.size
        self.dim = self.backbone.encode(torch.zeros(1, 3, crop, crop)).shape[1]
        self.limits = Limits(max_pixels=p.ingest.max_pixels, max_bytes=int(p.ingest.max_file_mb * 2**20),
                             min_side=p.ingest.min_side, keep_only_rgb=p.ingest.keep_only_rgb)
        self.threshold = self._calibrated_threshold()
        self._score = self._linear_scorer() if classifier == "linear" else self._nn_scorer()
        self.level2, self.families = self._level2() if family else (None, [])

    def _artifact(self, name: str, otherwise: str = "") -> Path:
        path = self.project / name
        if not path.exists():
            raise UserError(f"{path} is missing: run `make repro` (or `dvc pull`) first{otherwise}")
        return path

    def _level2(self):
        """The family network; a run that stopped before resnet_attribution can still say P(fake)."""
        card = self._artifact(f"{ATTRIBUTION_MODELS}/{attribution.MODEL_CARD}",
                              ", or score without the family (fakedetect predict --no-family)")
        return attribution.load_level(card.parent, "level2")

    def _calibrated_threshold(self) -> float | None:
        report = json.loads(self._artifact(REPORTS[self.classifier]).read_text())
        return report.get("calibrated_threshold")

    def _check_dimension(self, expected: int, what: str) -> None:
        if self.dim != expected:
            raise UserError(f"{what} expects {expected} features but the run's backbone "
                            f"({self.params.extract.model}) gives {self.dim}: the artifacts come from "
                            "another model; run `make repro` again")

    def _linear_scorer(self):
        """P(fake) from the trained Keras head, or the external UnivFD head the run evaluated."""
        if self.params.linear.external_head:
            from fakedetect import univfd_head

            weight, bias = univfd_head.load(self.params.linear.external_head, self.dim)
            return lambda x: (univfd_head.predict(weight, bias, x), None)
        from fakedetect import classifiers  # Keras: only after torch and torchvision are loaded

        model = classifiers.load(self._artifact(LINEAR_MODEL))
        self._check_dimension(model.input_shape[-1], LINEAR_MODEL)
        return lambda x: (classifiers.predict(model, x), None)

    def _nn_scorer(self):
        """The k nearest training features: P(fake) is their vote (0 or 1); the ranking score
        (nearest fake minus nearest real similarity) is what the calibrated threshold applies to."""
        from fakedetect import features, neighbours

        matrix, rows = features.load_features(self._artifact(FEATURES))
        bank = np.flatnonzero(rows.split.to_numpy() == "train")
        labels = rows.label.to_numpy()[bank]
        self._check_dimension(matrix.shape[1], FEATURES)
        k = self.params.nn.k

        def score(x):
            found = neighbours.search(x, matrix, labels, k, self.params.nn.chunk_size, bank_rows=bank)
            return found.predict(k).astype(np.float64), found.score

        return score

    def predict(self, paths: list[str], batch_size: int = 32, workers: int = 1) -> list[Prediction]:
        """Score every path; unreadable files come back with status `unreadable` and their reason.
        The family of one batch's fakes is found in a second thread while the next batch is
        encoded (9% more images/s on 2 cores); at most one batch waits for it, so memory stays flat."""
        results = [Prediction(path=p, status="unreadable") for p in paths]
        dataset = ImagePaths(paths, self.limits, self.params.preprocess.size)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                             collate_fn=_collate)
        family = None
        with (ThreadPoolExecutor(max_workers=1) as family_thread,
              tqdm(total=len(paths), desc="predict", unit="img", mininterval=2, disable=len(paths) < 8) as bar):
            for indices, pixels, skipped in loader:
                for i, reason in skipped:
                    results[i].reason = reason
                if pixels is not None:
                    batch = [results[i] for i in indices]
                    fakes = self._score_batch(batch, pixels)
                    if family is not None:
                        family.result()  # raises what the thread raised
                    family = family_thread.submit(self._name_families, [batch[j] for j in fakes],
                                                  pixels[fakes]) if fakes and self.level2 is not None else None
                bar.update(len(indices) + len(skipped))
            if family is not None:
                family.result()
        return results

    def _score_batch(self, batch: list[Prediction], pixels: torch.Tensor) -> list[int]:
        """P(fake) and the decisions for one batch of centre-cropped images (N x H x W x 3 uint8);
        returns the positions of those judged fake."""
        p_fake, ranking = self._score(self.backbone.encode(self.backbone.transform.batch(pixels.numpy())))
        decided = p_fake if ranking is None else ranking
        for j, result in enumerate(batch):
            result.status = "ok"
            result.p_fake = round(float(p_fake[j]), 6)
            result.fake_at_0_5 = bool(p_fake[j] > 0.5)
            result.threshold = self.threshold
            result.fake = bool(decided[j] > self.threshold) if self.threshold is not None else result.fake_at_0_5
            if ranking is not None:
                result.extra["nn_score"] = round(float(ranking[j]), 6)
        return [j for j, result in enumerate(batch) if result.fake]

    def _name_families(self, fakes: list[Prediction], pixels: torch.Tensor) -> None:
        """Level 2's family (GAN or diffusion) and its probability for images judged fake."""
        probabilities = attribution.class_probabilities(self.level2, pixels.permute(0, 3, 1, 2))
        for result, p in zip(fakes, probabilities):
            result.family = self.families[int(p.argmax())]
            result.p_family = round(float(p.max()), 6)

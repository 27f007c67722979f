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
from pydantic import ValidationError
from tqdm import tqdm

from fakedetect import trained_run
from fakedetect.detectors import aligned_check, registry, scoring
from fakedetect.features import engines
from fakedetect.attribution import card, network
from fakedetect.artifacts import (ATTRIBUTION_MODELS, DETECTOR_MODELS, FEATURES, LINEAR_MODEL, LINEAR_REPORT,
                                  NN_REPORT, PROTOCOLS_REPORT)
from fakedetect.data.images import Limits
from fakedetect.params import ExtractParams, Params
from fakedetect.stage import UserError

REPORTS = {"linear": LINEAR_REPORT, "nn": NN_REPORT}  # the calibrated threshold of each classifier
FIELDS = ["path", "status", "reason", "p_fake", "fake", "threshold", "fake_at_0_5", "family", "p_family"]
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

    def row(self) -> dict:
        """The fields `fakedetect predict` prints for the image (and serve answers), its scores
        rounded to 6 decimals: for display only, every decision was taken on the unrounded score."""
        row = {name: getattr(self, name) for name in FIELDS} | self.extra
        return {k: round(v, 6) if isinstance(v, float) and k != "threshold" else v for k, v in row.items()}


def run_params(project: Path) -> Params:
    """The params every stage of the last `dvc repro` ran with, as recorded in dvc.lock."""
    lock_path = trained_run.require_lock(project)
    stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {})
    recorded = {}
    for stage in stages.values():
        recorded.update(stage.get("params", {}).get("params.yaml", {}))
    try:
        return Params.model_validate({k: v for k, v in recorded.items() if k in Params.model_fields})
    except Exception as exc:
        raise UserError(f"{trained_run.LOCK} records params that this version cannot read ({exc}): run `make repro` again") from None


def _on_engine(p: ExtractParams, engine: str | None, address: str | None) -> ExtractParams:
    """The run's extract params with the engine (and Ray address) the command line asks for."""
    update = {} if engine is None else {"engine": engine}
    if address is not None:
        update["ray"] = p.ray.model_dump() | {"address": address}
    try:
        return ExtractParams.model_validate(p.model_dump() | update)
    except ValidationError:
        raise UserError(f"--address: expected auto, ray://host:port or host:port, got {address!r}") from None


def best_detector(folder: Path) -> tuple[str | None, str]:
    """predict's default among the detectors saved in `folder` (registry.default_detector: the best
    out-of-sample validation AP), with why it is the one; or None and why there is none. Reads only
    the detectors' detector.json (not dvc.lock)."""
    best, why = registry.default_detector(registry.saved(folder))
    return best, why if best is not None or "compare stage" not in why else f"{folder} holds {why}"


def default_detector(project: Path) -> tuple[str | None, dict | None, str]:
    """predict's default: when a protocol has run, the protocols stage's choice (reports/protocols.json
    `choice`: the best mean held-out AP, its threshold calibrated on held-out rows), else best_detector's;
    (name or None, the held-out choice or None, why)."""
    path = project / PROTOCOLS_REPORT
    choice = json.loads(path.read_text()).get("choice") if path.is_file() else None
    if choice and (project / DETECTOR_MODELS / choice["detector"]).is_dir():
        return choice["detector"], choice, (
            f"the best mean held-out AP ({choice['held_out_ap']}%, {choice['protocol']}, reports/protocols.json); "
            f"threshold {choice['threshold']} calibrated on {choice['calibration']}")
    best, why = best_detector(project / DETECTOR_MODELS)
    return best, None, why + (" (no generalisation protocol has run)" if best else "")


class Detector:
    """A trained run, loaded once, that scores batches of image files."""

    def __init__(self, project: str | Path = ".", classifier: str | None = None, family: bool = True,
                 engine: str | None = None, address: str | None = None, detector: str | None = None,
                 all_detectors: bool = False, engine_from: Detector | None = None, aligned: bool = True):
        """`engine` and `address` replace the run's extract.engine and extract.ray.address. `detector`
        scores with that detector of the compare stage ('best': the one with the best validation AP);
        `classifier` (linear | nn) with a pipeline stage's head instead. Without either: the best
        detector, or the linear head (logged) where the compare stage saved none that predict can run
        (docs/predict.md "Which detector scores"). `all_detectors` adds every saved detector's P(fake)
        to each prediction's extra. `engine_from` shares another Detector's backbone (loaded once; closed
        by its owner) and its detectors' scores of the batch in hand (registry.BatchScores). `aligned`:
        each image also scored after the run's aligned re-encoding, with its file facts (detectors.aligned_check)."""
        self.project = Path(project)
        self.all_detectors = all_detectors
        self.params = p = run_params(self.project)
        self.alignment = p.aligned.perturbation() if aligned else None
        if p.extract.source != "backbone":
            raise UserError("the run's features were imported (extract.imports): predict needs the backbone "
                            "that computes them; set images: [demo] or [datasets], empty extract.imports and run "
                            "`make repro`")
        held_out = None  # the protocols stage's choice, when it is the default
        if detector is None and classifier is None:
            detector, held_out, why = default_detector(self.project)
            if detector is None:
                log.warning("predict: scoring with the linear head (linear_eval's): %s", why)
                classifier = "linear"
            else:
                log.info("predict: scoring with the detector %s: %s", detector, why)
        elif detector == "best":
            detector, why = best_detector(self.project / DETECTOR_MODELS)
            if detector is None:
                raise UserError(f"--detector best: {why}")
        self.detector, self.classifier = detector, classifier
        self.thresholds = {}  # a compare-stage detector's own thresholds (registry.FittedDetector.thresholds)
        self.calibration = ""  # how its calibrated threshold was chosen, or why there is none
        self.threshold = self._calibrated_threshold() if detector is None else None
        self.level2, self.families = self._level2() if family else (None, [])
        self._owns_engine = engine_from is None
        self.engine = engines.create(_on_engine(p.extract, engine, address)) if engine_from is None else engine_from.engine
        # the detectors' scores of the batch in hand, shared with engine_from's (a fusion's members scored once)
        self.batch_scores = engine_from.batch_scores if engine_from is not None else registry.BatchScores()
        try:
            self.dim = self.engine.dimension()
            self.limits = Limits(max_pixels=p.ingest.max_pixels, max_bytes=int(p.ingest.max_file_mb * 2**20),
                                 min_side=p.ingest.min_side, keep_only_rgb=p.ingest.keep_only_rgb)
            self._others = self._registry_scorers() if all_detectors else {}  # torch kinds before any Keras head
            if detector is not None:
                self._score, self.threshold = self._registry_scorer(detector)
                if held_out is not None and held_out["threshold"] is not None:  # calibrated on held-out generators
                    self.threshold = held_out["threshold"]
                    self.thresholds = self.thresholds | {"calibrated": held_out["threshold"],
                                                         "calibration": held_out["calibration"],
                                                         **held_out["operating_thresholds"]}
            else:
                self._score = self._linear_scorer() if classifier == "linear" else self._nn_scorer()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Shut down the Ray instance the engine started, if any."""
        if self._owns_engine:
            self.engine.close()

    def _artifact(self, name: str, otherwise: str = "") -> Path:
        path = self.project / name
        if not path.exists():
            raise UserError(f"{path} is missing: run `make repro` (or `dvc pull`) first{otherwise}")
        return path

    def _level2(self):
        """The family network; a run that stopped before resnet_attribution can still say P(fake)."""
        found = self._artifact(f"{ATTRIBUTION_MODELS}/{card.MODEL_CARD}",
                               ", or score without the family (fakedetect predict --no-family)")
        return card.load_level(found.parent)

    def _calibrated_threshold(self) -> float | None:
        report = json.loads(self._artifact(REPORTS[self.classifier]).read_text())
        self.calibration = report.get("calibration", "")
        return report.get("calibrated_threshold")

    def _check_dimension(self, expected: int, what: str) -> None:
        if self.dim != expected:
            raise UserError(f"{what} expects {expected} features but the run's backbone "
                            f"({self.params.extract.model}) gives {self.dim}: the artifacts come from "
                            "another model; run `make repro` again")

    def _linear_scorer(self):
        """P(fake) from the head linear_eval scored with (linear_train's head, or the external UnivFD
        head): the registry detector pipeline_detectors.linear_detector (Keras: after torch is loaded)."""
        from fakedetect.detectors import pipeline_detectors

        if not self.params.linear.external_head:
            self._artifact(LINEAR_MODEL)
        spec = pipeline_detectors.linear_spec(self.params)
        model = registry.build(pipeline_detectors.LINEAR, spec)
        if self.params.linear.external_head:
            model.key = "linear.external_head"
            model.fit(registry.Inputs(np.zeros((1, self.dim), np.float32), []), None, None, None)
        else:
            model.restore_model(self.project / LINEAR_MODEL, self.dim)
        head = registry.FittedDetector(pipeline_detectors.LINEAR, spec, model)
        whole = [("all", self.dim)]
        return lambda x: (head.score(registry.Inputs(x, whole)).p_fake, None)

    def _nn_scorer(self):
        """The k nearest training features (nn_eval's `knn` detector, with the run's nn params): P(fake) is
        their vote; the ranking score (nearest fake minus nearest real similarity) is what the
        calibrated threshold applies to. The bank is the run's features, memory-mapped."""
        from fakedetect.detectors import pipeline_detectors
        from fakedetect.features import feature_files

        matrix, rows = feature_files.load_features(self._artifact(FEATURES), mapped=True)
        self._check_dimension(matrix.shape[1], FEATURES)
        self.bank_features, self.bank_rows = matrix, rows  # the evidence (fakedetect serve) shows the nearest
        knn = pipeline_detectors.fit_knn(self.params, matrix, rows, self.project / FEATURES)
        whole = [("all", matrix.shape[1])]

        def score(x):
            result = knn.score(registry.Inputs(x, whole))
            return result.decision.astype(np.float64), result.ranking

        return score

    def _registry_scorer(self, name: str):
        """(features -> (P(fake), ranking score), its calibrated threshold) of a detector of the compare stage."""
        from fakedetect.features import feature_files

        layers = feature_files.load_layers(self._artifact(FEATURES), self.dim)
        models = self.project / DETECTOR_MODELS
        saved = registry.saved(models)
        self._artifact(f"{DETECTOR_MODELS}/{name}", f"; the compare stage saved {', '.join(saved) or 'none yet'}")
        if registry.needs_noisy_views(name, saved):
            raise UserError(f"--detector {name}: a noise-sensitivity detector needs noisy views of each image, "
                            "which predict does not compute yet; choose another detector")
        detector, score = registry.score_function(models, name, layers, self.batch_scores)
        if name == self.detector:
            self.thresholds = detector.thresholds
            self.calibration = detector.thresholds.get("calibration", "")

        def p_fake_and_ranking(x):
            result = score(x)
            return result.p_fake, result.ranking

        return p_fake_and_ranking, detector.thresholds.get("calibrated")

    def _registry_scorers(self) -> dict:
        """Every saved detector that predict can run (not the noise-sensitivity ones), torch kinds first."""
        saved = registry.saved(self.project / DETECTOR_MODELS)
        scorers = {}
        for name in registry.in_run_order({n: d["kind"] for n, d in saved.items()}):
            try:
                scorers[name] = self._registry_scorer(name)[0]
            except UserError as exc:
                log.info("--all leaves out %s: %s", name, exc)
        return scorers

    def predict(self, paths: list[str], batch_size: int = 32, workers: int = 1, on_batch=None) -> list[Prediction]:
        """Score every path; unreadable files come back with status `unreadable` and their reason.
        `on_batch(positions, features, pixels)`, when given, sees each batch's features (and centre
        crops) after it is scored, so that other scorers reuse one encoding (fakedetect serve).
        The family of one batch's fakes is found in a second thread while the next batch is
        encoded (9% more images/s on 2 cores); at most one batch waits for it, so memory stays flat."""
        results = [Prediction(path=p, status="unreadable") for p in paths]
        items = [engines.Item(path) for path in paths]
        batches = self.engine.encode(items, self.params.preprocess.size, batch_size, workers, self.limits,
                                     keep_pixels=self.level2 is not None)
        family = None
        with (ThreadPoolExecutor(max_workers=1) as family_thread,
              tqdm(total=len(paths), desc="predict", unit="img", mininterval=2, disable=len(paths) < 8) as bar):
            for batch in batches:
                for i, reason, _ in batch.problems:
                    results[i].reason = reason
                if batch.positions:
                    scored = [results[i] for i in batch.positions]
                    fakes = self._score_batch(scored, batch.features)
                    if family is not None:
                        family.result()  # raises what the thread raised
                    family = family_thread.submit(self._name_families, [scored[j] for j in fakes],
                                                  torch.from_numpy(batch.pixels[fakes])) if fakes and self.level2 is not None else None
                    if on_batch is not None:
                        on_batch(batch.positions, batch.features, batch.pixels)
                bar.update(len(batch.positions) + len(batch.problems))
            if family is not None:
                family.result()
        if self.alignment is not None:
            aligned_check.check(self, results, paths, batch_size, workers)
        return results

    def score_features(self, batch: list[Prediction], features: np.ndarray) -> None:
        """P(fake) and the decisions of already encoded images (no family): one encoding, several classifiers."""
        self._score_batch(batch, features)

    def _score_batch(self, batch: list[Prediction], features: np.ndarray) -> list[int]:
        """P(fake) and the decisions for one batch of images' features; returns the positions of
        those judged fake."""
        p_fake, ranking = self._score(features)
        decided = self._decided(p_fake, ranking)
        at_0_5 = scoring.decide(p_fake)
        fake = self._decide(p_fake, decided)
        for j, result in enumerate(batch):
            score = float(decided[j])  # kept unrounded: serve's decisions at other thresholds use the same number
            result.status = "ok"
            result.p_fake = float(p_fake[j])
            result.fake_at_0_5 = bool(at_0_5[j])
            result.threshold = self.threshold
            result.fake = bool(fake[j])
            if self.threshold is None:  # said, never silent: the decision falls back to P(fake) > 0.5
                result.extra["calibration"] = self.calibration
            if ranking is not None and self.detector is None:
                result.extra["nn_score"] = score
            if self.detector is not None:  # its name, and the score its thresholds apply to
                result.extra["detector"] = self.detector
                result.extra["score"] = score
        for name, score in self._others.items():
            for j, p in enumerate(score(features)[0]):
                batch[j].extra[f"p_fake_{name}"] = float(p)
        return [j for j, result in enumerate(batch) if result.fake]

    @staticmethod
    def _decided(p_fake: np.ndarray, ranking: np.ndarray | None) -> np.ndarray:
        """The score the threshold applies to: the ranking score, or P(fake) without one; float64, as a
        float32 array against a Python float is compared in float32."""
        return np.asarray(p_fake if ranking is None else ranking, np.float64)

    def _decide(self, p_fake: np.ndarray, decided: np.ndarray) -> np.ndarray:
        """The verdicts (True = fake): `decided` above the calibrated threshold, or P(fake) > 0.5 where the
        run has no threshold."""
        return decided > self.threshold if self.threshold is not None else scoring.decide(p_fake).astype(bool)

    def verdicts(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(P(fake), the score the threshold applies to, the verdict) of encoded images, as predict decides them."""
        p_fake, ranking = self._score(features)
        decided = self._decided(p_fake, ranking)
        return p_fake, decided, self._decide(p_fake, decided)

    def _name_families(self, fakes: list[Prediction], pixels: torch.Tensor) -> None:
        """Level 2's family (GAN or diffusion) and its probability for images judged fake."""
        probabilities = network.class_probabilities(self.level2, pixels.permute(0, 3, 1, 2))
        for result, p in zip(fakes, probabilities):
            result.family = self.families[int(p.argmax())]
            result.p_family = float(p.max())

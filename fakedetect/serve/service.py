"""The trained run behind the server: every detector on one encoding of each image, the family,
the nearest training images and (optionally) the Grad-CAM heatmap.

Scoring goes through `Detector.predict`, the code behind `fakedetect predict`: the primary
detector (predict's default) gives an image's own fields, exactly predict's JSON for the same
file and run; the others (verdicts.others) score the same features."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from fakedetect import trained_run
from fakedetect.artifacts import ATTRIBUTION_MODELS, FEATURES
from fakedetect.predict import Detector, Prediction
from fakedetect.features import feature_files
from fakedetect.serve import verdicts
from fakedetect.serve.evidence import Evidence
from fakedetect.serve.gradcam import GradCam
from fakedetect.stage import UserError

class Service:
    """Detectors loaded once; `score` is serialised (one model, shared by the requests)."""

    def __init__(self, project: str | Path = ".", k: int = 5):
        self.project = Path(project)
        trained_run.require_served(self.project)
        self.primary = Detector(self.project, family=True)  # predict's default: the best detector, or the linear head
        self.default = self.primary.detector or self.primary.classifier
        self.detectors = {self.default: self.primary}
        try:
            listed, self.left_out = verdicts.others(self.project, self.primary)
            for name, choice in listed.items():
                self.detectors[name] = Detector(self.project, family=False, engine_from=self.primary, **choice)
            self.points = {name: verdicts.operating_points(verdicts.thresholds(self.project, d))
                           for name, d in self.detectors.items()}
            # one bank in the process: the evidence and every k-NN detector (a fusion's member too) read
            # the run's features through one memory map (feature_files.open_matrix)
            bank = feature_files.load_features(self.project / FEATURES, mapped=True)
            self.evidence = Evidence(self.project, *bank, k, self.primary.params.nn.chunk_size)
            self.gradcam = GradCam(self.project / ATTRIBUTION_MODELS)
        except BaseException:
            self.close()
            raise
        self.titles = {name: verdicts.title(self.project, d) for name, d in self.detectors.items()}
        if "nn" in self.titles and self.detectors["nn"].detector is None:
            self.titles["nn"] = f"{self.primary.params.nn.k}-NN, {self.titles['nn']}"
        self._lock = threading.Lock()

    def close(self) -> None:
        for detector in self.detectors.values():
            detector.close()

    def info(self) -> dict:
        """What the page shows before any upload: the detectors and their operating points."""
        p = self.primary.params
        return {"project": str(self.project.resolve().name), "backbone": p.extract.model,
                "families": self.primary.families, "neighbours": self.evidence.k,
                "detectors": [{"name": n, "title": self.titles[n], "points": self.points[n], "default": n == self.default}
                              for n in self.detectors],
                "left_out": [{"name": n, "why": why} for n, why in self.left_out.items()]}

    def score(self, paths: list[str], names: list[str], heatmap: bool = True) -> tuple[list[dict], dict]:
        """One result per path (`names` replace the paths in it: the upload's own file names), and
        the seconds spent scoring and drawing heatmaps."""
        others = {name: [Prediction(path=n, status="unreadable") for n in names]
                  for name in self.detectors if name != self.default}
        nearest, crops = {}, {}

        def on_batch(positions, features, pixels):
            for name, results in others.items():
                self.detectors[name].score_features([results[i] for i in positions], features)
            for i, found in zip(positions, self.evidence.nearest(features)):
                nearest[i] = found
            if heatmap and pixels is not None:
                crops.update({i: pixels[j] for j, i in enumerate(positions)})

        with self._lock:
            start = time.perf_counter()
            primary = self.primary.predict(paths, batch_size=self.primary.params.extract.batch_size,
                                           workers=0, on_batch=on_batch)
            scored = time.perf_counter()
            heatmaps = {i: self.gradcam.overlay_png(crop) for i, crop in crops.items()}
            drawn = time.perf_counter()
        results = []
        for i, (prediction, name) in enumerate(zip(primary, names)):
            prediction.path = name
            row = prediction.row()
            row["detectors"] = [verdicts.detector_entry(self.default, self.titles[self.default], prediction,
                                                        self.points[self.default], default=True)]
            row["detectors"] += [verdicts.detector_entry(n, self.titles[n], r[i], self.points[n]) for n, r in others.items()]
            row["neighbours"] = nearest.get(i, [])
            if i in heatmaps:
                row["heatmap"], row["heatmap_class"] = heatmaps[i]
            results.append(row)
        return results, {"score_s": scored - start, "heatmap_s": drawn - scored}

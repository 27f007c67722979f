"""A kind defined outside the package, here, named in params as `module:Class`, runs through compare,
predict, serve and robustness with no other file changed (docs/detectors.md "Adding a detector")."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import yaml
from pydantic import Field

from fakedetect.detectors.kind import Kind
from fakedetect.params.base import Section
from helpers import PROJECT, run_stage, stage_env


class ToyParams(Section):
    scale: float = Field(1.0, gt=0, description="the logit's scale")


class Toy(Kind):
    """Nearest class centre: the logit of fake is the distance to the real centre minus that to the fake one."""

    Params = ToyParams

    def fit(self, train, y_train, val, y_val) -> None:
        self.centres = np.stack([train.x[y_train == label].mean(0) for label in (0, 1)]).astype(np.float64)

    def predict(self, inputs):
        distances = np.linalg.norm(inputs.x[:, None, :] - self.centres[None], axis=2)
        logit = self.params.scale * (distances[:, 0] - distances[:, 1])
        return 1 / (1 + np.exp(-logit)), logit

    def state(self) -> dict:
        return {"centres": self.centres}

    def restore(self, arrays: dict, folder) -> None:
        self.centres = arrays["centres"]


def test_a_toy_kind_runs_through_compare_predict_serve_and_robustness(trained_project, tmp_path):
    from starlette.testclient import TestClient

    from fakedetect.predict import Detector
    from fakedetect.serve.app import create_app
    from fakedetect.serve.service import Service

    project = tmp_path / "project"
    shutil.copytree(trained_project, project, symlinks=True)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["detectors"] = {"knn": {"kind": "knn", "features": "all", "params": {}},
                           "toy": {"kind": f"{__name__}:Toy", "features": "all", "params": {"scale": 2.0}},
                           "fusion": {"kind": "fusion", "features": "all", "params": {"members": ["knn", "toy"]}}}
    env = stage_env(PYTHONPATH=os.pathsep.join([str(PROJECT), str(PROJECT / "tests")]))
    for stage in ("compare", "robustness"):
        result = run_stage(stage, project, params, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        params = None
    report = json.loads((project / "reports/compare.json").read_text())
    assert set(report["detectors"]) == {"knn", "toy", "fusion"} and report["skipped"] == {}
    assert report["detectors"]["toy"]["report"]["mean"]["ap"] > 60
    assert report["detectors"]["fusion"]["validation"]["how"].startswith("cross-fitted")
    assert {"toy", "fusion"} <= set(json.loads((project / "reports/robustness.json").read_text())["methods"])

    images = sorted((project / "data/demo/test").rglob("*.png"))[:4]
    detector = Detector(project, detector="toy", family=False, all_detectors=True)
    try:
        found = detector.predict([str(p) for p in images], batch_size=4, workers=0)
    finally:
        detector.close()
    assert all(p.status == "ok" and p.extra["detector"] == "toy" and "p_fake_fusion" in p.extra for p in found)

    service = Service(project)
    try:
        client = TestClient(create_app(service, 2**20))
        assert {"toy", "fusion"} <= {d["name"] for d in client.get("/api/info").json()["detectors"]}
        body = client.post("/api/score?heatmap=0", files=[("files", (p.name, p.read_bytes())) for p in images[:2]])
        assert body.status_code == 200
        assert all("toy" in {d["name"] for d in image["detectors"]} for image in body.json()["images"])
    finally:
        service.close()

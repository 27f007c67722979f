"""The detector registry: every kind fits, scores, saves and loads; params errors name the key;
fusion is at least as good as its best member; ECE and Brier as defined; the per-block slices of
the backbone; noisy views encoded once; the compare stage as a subprocess."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch  # before any Keras
import yaml
from sklearn.metrics import average_precision_score

from fakedetect.detectors import registry, scoring
from fakedetect.detectors.registry import Inputs
from fakedetect.data import perturbations
from fakedetect.evaluation import compare, metrics
from fakedetect.features import backbones, feature_files, noisy_views
from fakedetect.features.feature_store import FeatureStore
from fakedetect.params import DetectorSpec, ExtractParams, ParamsError, Perturbation, load_params
from fakedetect.stage import UserError
from helpers import PROJECT, run_stage, write_image

LAYERS = [("a", 8), ("b", 16)]


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features whose block `a` tells fakes apart; the noisy view of a fake moves more."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    x = rng.normal(size=(n, 24)).astype(np.float32) + 3.0
    x[:, :8] += 1.5 * labels[:, None]
    noisy = x + rng.normal(size=x.shape).astype(np.float32) * (0.05 + 0.5 * labels[:, None])
    return x, labels, noisy


def inputs(x, noisy=None, members=None, layers=LAYERS) -> Inputs:
    return Inputs(x, layers, {0.05: noisy} if noisy is not None else {}, members or {})


FAST_KINDS = {"knn": {"k": 3}, "blocks": {"epochs": 30, "learning_rate": 0.01, "projection": 8, "units": 8},
              "noise_sensitivity": {"sigma": 0.05}}


@pytest.mark.fast
@pytest.mark.parametrize("kind", sorted(FAST_KINDS))
def test_every_fast_kind_fits_scores_saves_and_loads(kind, tmp_path):
    x, y, noisy = synthetic(160, 0)
    xv, yv, noisyv = synthetic(60, 1)
    xt, yt, noisyt = synthetic(80, 2)
    spec = DetectorSpec(kind=kind, features="layers" if kind == "blocks" else "all", params=FAST_KINDS[kind])
    detector = registry.fit(kind, spec, inputs(x, noisy), y, inputs(xv, noisyv), yv)
    scored = detector.score(inputs(xt, noisyt))
    assert ((scored.p_fake >= 0) & (scored.p_fake <= 1)).all()
    assert average_precision_score(yt, scored.ranking) > 0.9
    assert set(detector.thresholds) == {"p_fake", "calibrated", "calibration", "tpr_at_fpr1", "tpr_at_fpr5"}
    assert detector.thresholds["calibrated"] is not None
    detector.save(tmp_path / kind)
    again = registry.load(tmp_path / kind).score(inputs(xt, noisyt))
    np.testing.assert_allclose(again.p_fake, scored.p_fake, rtol=1e-6)
    np.testing.assert_allclose(again.ranking, scored.ranking, rtol=1e-6)
    with np.load(tmp_path / kind / registry.ARRAYS, allow_pickle=False) as saved:  # no object arrays anywhere
        assert all(saved[key].dtype != object for key in saved.files)


@pytest.mark.fast
def test_knn_vote_fraction_is_its_p_fake():
    bank = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.2, 0.8]], np.float32)
    labels = np.array([0, 0, 1, 1, 1])
    spec = DetectorSpec(kind="knn", params={"k": 3})
    detector = registry.fit("knn", spec, Inputs(bank, [("final", 2)]), labels, Inputs(bank, [("final", 2)]), labels)
    scored = detector.score(Inputs(np.array([[1, 0.05], [0.05, 1]], np.float32), [("final", 2)]))
    np.testing.assert_allclose(scored.p_fake, [1 / 3, 1.0])


@pytest.mark.fast
def test_external_head_and_fusion(tmp_path):
    x, y, _ = synthetic(100, 0)
    weight = np.zeros((1, 24), np.float32)
    weight[0, :8] = 1.0
    torch.save({"weight": torch.from_numpy(weight), "bias": torch.tensor([-28.0])}, tmp_path / "head.pth")
    spec = DetectorSpec(kind="external_head", params={"path": str(tmp_path / "head.pth")})
    head = registry.fit("head", spec, inputs(x), y, inputs(x), y)
    assert average_precision_score(y, head.score(inputs(x)).p_fake) > 0.9
    bad = DetectorSpec(kind="external_head", params={"path": str(tmp_path / "missing.pth")})
    with pytest.raises(UserError, match="detectors.bad.params.path"):
        registry.fit("bad", bad, inputs(x), y, inputs(x), y)


@pytest.mark.fast
def test_fusion_is_at_least_as_good_as_its_best_member():
    """Two members, each informative on its own half of the rows and noise on the other: the fusion
    of their scores ranks the test rows better than either."""
    rng = np.random.default_rng(0)

    def members(n):
        y = rng.integers(0, 2, n)
        half = rng.random(n) < 0.5
        a = np.where(half, y * 2.0 + rng.normal(0, 0.6, n), rng.normal(0, 1, n))
        b = np.where(~half, y * 2.0 + rng.normal(0, 0.6, n), rng.normal(0, 1, n))
        return y, {"a": a, "b": b}

    yv, val = members(400)
    yt, test = members(400)
    empty = np.zeros((400, 1), np.float32)
    spec = DetectorSpec(kind="fusion", params={"members": ["a", "b"]})
    fusion = registry.fit("fusion", spec, inputs(empty[:0]), yv[:0], inputs(empty, members=val), yv)
    fused = average_precision_score(yt, fusion.score(inputs(empty, members=test)).ranking)
    best = max(average_precision_score(yt, scores) for scores in test.values())
    assert fused >= best


@pytest.mark.fast
def test_ece_and_brier_match_a_direct_computation():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.random(500), [0.0, 1.0, 1 / 15, 14 / 15]])
    y = (rng.random(len(p)) < p).astype(int)
    total = 0.0
    for b in range(15):
        low, high = b / 15, (b + 1) / 15
        inside = [i for i in range(len(p)) if low <= p[i] < high or (b == 14 and p[i] == 1.0)]
        if inside:
            total += len(inside) / len(p) * abs(np.mean(y[inside]) - np.mean(p[inside]))
    assert metrics.ece(y, p) == pytest.approx(total, abs=1e-12)
    assert metrics.brier(y, p) == pytest.approx(sum((pi - yi) ** 2 for pi, yi in zip(p, y)) / len(p))
    rows = pd.DataFrame({"split": ["val"] * 4 + ["test"] * 6, "test_set": [""] * 4 + ["s"] * 6,
                         "label": [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]})
    probs = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.6, 0.4, 0.7, 0.8, 0.2])
    report = metrics.report(rows, probs, (probs > 0.5).astype(int), "x", probabilities=probs)
    assert report["test_sets"]["s"]["brier"] == round(metrics.brier(rows.label[4:], probs[4:]), 6)
    assert report["mean"]["worst_acc"] == report["test_sets"]["s"]["acc"]
    assert metrics.headline(report, "x") == {"x": {k: report["mean"][k] for k in ("ap", "acc_calibrated", "tpr_at_fpr5")}}


@pytest.mark.fast
@pytest.mark.parametrize("edit, expected", [
    ({"blocks": {"kind": "blocks", "features": "layers", "params": {"hidden": 3}}},
     "detectors.blocks.params.hidden: unknown key"),
    ({"x": {"kind": "nope"}}, "detectors.x.kind: unknown kind 'nope'"),
    ({"x": {"kind": "knn", "features": "block2"}}, "detectors.x.features: 'block2' is not one of"),
    ({"x": {"kind": "knn", "params": {"k": 0}}}, "detectors.x.params.k: Input should be greater than 0"),
    ({"x": {"kind": "knn", "colour": 1}}, "detectors.x.colour: unknown key"),
    ({"f": {"kind": "fusion", "params": {"members": ["ghost"]}}}, "detectors.f.params.members: 'ghost'"),
    ({"x": {"kind": "knn", "params": {"k": 3}}}, "detectors.x.params: a knn detector's recipe lives in params nn"),
    ({"x": {"kind": "fcnn", "params": {"units": 3}}}, "recipe lives in params linear.fcnn and linear.seed"),
])
def test_the_registry_rejects_unknown_kinds_and_params_naming_the_key(tmp_path, edit, expected):
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["detectors"] = edit
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError) as caught:
        load_params(tmp_path / "params.yaml")
    assert expected in str(caught.value)


@pytest.mark.fast
def test_views_and_layers_of_the_backbone(tmp_path):
    backbone = backbones.create(ExtractParams(pretrained=None, layers=["block3", "block1"], loader_workers=0))
    assert [name for name, _ in backbone.layers] == ["block1", "block3"]
    out = backbone.encode(torch.zeros(1, 3, 224, 224))
    assert sum(width for _, width in backbone.layers) == out.shape[1]
    assert backbone.layers == [("block1", 24), ("block3", 80)]
    feature_files.save_layers(tmp_path, backbone.layers)
    assert feature_files.load_layers(tmp_path, 104) == backbone.layers
    assert feature_files.load_layers(tmp_path / "imported", 7) == [("final", 7)]
    with pytest.raises(UserError, match="add up to 104"):
        feature_files.load_layers(tmp_path, 100)
    matrix = np.arange(2 * 104, dtype=np.float32).reshape(2, 104)
    part, layers = registry.view(matrix, backbone.layers, "layer:block3", "here")
    np.testing.assert_array_equal(part, matrix[:, 24:])
    assert layers == [("block3", 80)]
    assert registry.needs(DetectorSpec(kind="blocks", features="layers"), [("final", 7)]) is not None


@pytest.mark.fast
def test_noise_is_seeded_per_image_and_keyed_apart():
    rgb = np.full((20, 30, 3), 128, np.uint8)
    noise = Perturbation(noise=0.1)
    a = perturbations.apply(rgb, noise, "ab" * 32)
    np.testing.assert_array_equal(a, perturbations.apply(rgb, noise, "ab" * 32))
    assert not np.array_equal(a, perturbations.apply(rgb, noise, "cd" * 32))
    assert not np.array_equal(a, perturbations.apply(rgb, Perturbation(noise=0.1, noise_seed=1), "ab" * 32))
    assert a.dtype == np.uint8 and 20 < (a.astype(float) - 128).std() < 30  # sigma 0.1 = 25.5 levels
    assert perturbations.name(noise) == "noise0_1"
    assert perturbations.key("ab" * 32, noise) != perturbations.key("ab" * 32, Perturbation(noise=0.2))
    with pytest.raises(ValueError, match="SHA-256"):
        perturbations.apply(rgb, noise)


def counting(backbone) -> list[int]:
    calls, encode = [], backbone.encode
    backbone.encode = lambda batch: calls.append(len(batch)) or encode(batch)
    return calls


def test_stored_features_encode_nothing_and_noisy_views_are_encoded_once(tmp_path):
    paths = [write_image(tmp_path / "img" / f"{i}.png", size=(40, 36), seed=i) for i in range(6)]
    from fakedetect.data import images

    rows = pd.DataFrame({"split": ["train", "train", "val", "val", "test", "test"], "test_set": ["", "", "", "", "t", "t"],
                         "label": [0, 1, 0, 1, 0, 1], "image": [str(p) for p in paths],
                         "image_sha256": [images.load(str(p)).sha256 for p in paths]})
    backbone = backbones.create(ExtractParams(pretrained=None, layers=["block0"], loader_workers=0))
    calls = counting(backbone)
    store = FeatureStore(tmp_path / "store", backbone.identity)
    first, computed = noisy_views.features(rows, 0.05, 0, backbone, store, 4, 0)
    assert computed == sum(calls) == len(paths) and first.shape == (6, 16)
    calls.clear()
    again, computed = noisy_views.features(rows, 0.05, 0, backbone, store, 4, 0)  # a second run, or detector
    assert computed == 0 and calls == []
    np.testing.assert_array_equal(again, first)

    # The compare step over stored features: detectors that need no noisy view never ask for one.
    asked = []
    matrix = np.random.default_rng(0).normal(size=(6, 16)).astype(np.float32)
    detectors = {"knn": DetectorSpec(kind="knn"), "noise": DetectorSpec(kind="noise_sensitivity")}

    def noisy(sigma, seed, indices):
        asked.append(sigma)
        found, _ = noisy_views.features(rows.iloc[indices], sigma, seed, backbone, store, 4, 0)
        return found

    calls.clear()
    outcome = compare.run(matrix, rows, [("final", 16)], {"knn": detectors["knn"]}, noisy)
    assert asked == [] and calls == [] and set(outcome.fitted) == {"knn"}
    outcome = compare.run(matrix, rows, [("final", 16)], detectors, noisy)
    assert asked == [0.05] and calls == [] and set(outcome.fitted) == {"knn", "noise"}  # the store held them
    imported = rows.drop(columns=["image", "image_sha256"])
    assert "imported" in noisy_views.unavailable(imported)


def test_the_compare_stage_runs_as_a_subprocess(tmp_path):
    """On stored features without images (as imported ones): knn, blocks, fcnn and fusion run;
    noise_sensitivity is skipped with its reason; the saved detectors score as the stage did."""
    x, y, _ = synthetic(240, 0)
    split = np.array(["train"] * 120 + ["val"] * 40 + ["test"] * 80)
    test_set = np.where(split == "test", np.where(np.arange(240) % 4 < 2, "seen", "other"), "")
    rows = pd.DataFrame({"id": range(240), "split": split, "test_set": test_set, "label": y,
                         "generator": np.where(y == 1, "g", "real"), "family": np.where(y == 1, "gan", "real")})
    feature_files.save_features(tmp_path / "data" / "features", x, rows)
    feature_files.save_layers(tmp_path / "data" / "features", LAYERS)
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["linear"]["fcnn"].update(epochs=1, units=8)
    params["detectors"] = {
        "knn": {"kind": "knn", "features": "all", "params": {}},
        "blocks": {"kind": "blocks", "features": "layers", "params": {"epochs": 3}},
        "block_a": {"kind": "knn", "features": "layer:a", "params": {}},
        "fcnn": {"kind": "fcnn", "features": "all", "params": {}},
        "noise_sensitivity": {"kind": "noise_sensitivity", "features": "all", "params": {}},
        "fusion": {"kind": "fusion", "features": "all", "params": {"members": ["knn", "blocks"]}}}
    result = run_stage("compare", tmp_path, params)
    assert result.returncode == 0, result.stderr[-3000:]
    headline = json.loads((tmp_path / "metrics" / "compare.json").read_text())
    assert set(headline) == {"knn", "blocks", "block_a", "fcnn", "fusion"}
    assert set(headline["knn"]) == set(metrics.HEADLINE)
    report = json.loads((tmp_path / "reports" / "compare.json").read_text())
    assert "imported" in report["skipped"]["noise_sensitivity"]
    assert set(report["detectors"]["knn"]["report"]["test_sets"]) == {"seen", "other"}
    assert "seconds" not in json.dumps(report)
    sets = pd.read_csv(tmp_path / "plots" / "compare" / "sets.csv")
    assert len(sets) == 5 * 2
    saved = registry.load(tmp_path / "models" / "detectors" / "blocks")
    scored = np.flatnonzero(split != "train")
    p = saved.score(Inputs(x[scored], LAYERS)).ranking
    aps = [100 * average_precision_score(y[scored][test_set[scored] == name], p[test_set[scored] == name])
           for name in ("seen", "other")]
    assert round(float(np.mean(aps)), 4) == pytest.approx(headline["blocks"]["ap"], abs=1e-3)


def test_the_comparison_charts_render_offline(tmp_path):
    """The compare stage's plots as dvc.yaml declares them, drawn by `dvc plots show` with the offline
    template, in headless Chromium (skipped without one)."""
    from test_plots_page import CHROMIUM, assert_stage_charts_render

    if CHROMIUM is None:
        pytest.skip("no Chromium on PATH (set CHROMIUM=/path/to/it; .ci/run installs Debian's chromium)")
    outcome = compare.Outcome(reports={
        name: {"report": {"test_sets": {s: {"acc_calibrated": 50 + i + j, "ap": 60 + i * j if s != "ctl" else None}
                                        for j, s in enumerate(["seen", "unseen", "ctl"])},
                          "mean": {f: 40.0 + 10 * i for f in compare.BARS}}}
        for i, name in enumerate(["knn", "blocks", "fusion"])})
    sets, bars = compare.tables(outcome)
    (tmp_path / "plots" / "compare").mkdir(parents=True)
    sets.to_csv(tmp_path / "plots" / "compare" / "sets.csv", index=False)
    bars.to_csv(tmp_path / "plots" / "compare" / "headline.csv", index=False)
    pd.DataFrame([{"detector": name, "test_set": "unseen", "condition": condition, "ap": 70.0 + i, "acc_calibrated": 60.0}
                  for i, name in enumerate(["knn", "blocks"]) for condition in ("clean", "aligned")]
                 ).to_csv(tmp_path / "plots" / "compare" / "aligned.csv", index=False)
    assert_stage_charts_render(tmp_path, "compare", 3)


@pytest.mark.fast
def save_a_fusion_and_its_members(models):
    """knn, block_b (a knn on one layer), their fusion and a noise-sensitivity detector, fitted on
    synthetic rows and saved in `models`: (the fitted detectors, validation rows, the members' rankings)."""
    x, y, noisy = synthetic(160, 0)
    xv, yv, noisyv = synthetic(60, 1)
    specs = {"knn": DetectorSpec(kind="knn"), "block_b": DetectorSpec(kind="knn", features="layer:b"),
             "noise": DetectorSpec(kind="noise_sensitivity")}
    def viewed(features, spec, noisy_view=None):  # what compare.run gives each detector
        part, layers = registry.view(features, LAYERS, spec.features, "test")
        return inputs(part, None if noisy_view is None else registry.view(noisy_view, LAYERS, spec.features, "")[0],
                      layers=layers)

    fitted = {name: registry.fit(name, spec, viewed(x, spec, noisy), y, viewed(xv, spec, noisyv), yv)
              for name, spec in specs.items()}
    members = {m: fitted[m].score(viewed(xv, specs[m])).ranking for m in ("knn", "block_b")}
    fitted["fusion"] = registry.fit("fusion", DetectorSpec(kind="fusion", params={"members": ["knn", "block_b"]}),
                                    inputs(x), y, inputs(xv, members=members), yv)
    for name, detector in fitted.items():
        detector.save(models / name)
    return fitted, xv, members


def test_saved_detectors_score_as_scorers_and_are_listed(tmp_path, capsys):
    """What robustness and predict read: the saved detectors as scoring.Scorer, a fusion with its members;
    a noise-sensitivity detector left out with the reason; `fakedetect detectors` lists kinds and detectors."""
    models = tmp_path / "models" / "detectors"
    fitted, xv, members = save_a_fusion_and_its_members(models)
    scorers, left_out = scoring.saved(models, LAYERS)
    assert set(scorers) == {"knn", "block_b", "fusion"} and set(left_out) == {"noise"}
    ranking, decision = scorers["fusion"].score(xv)
    np.testing.assert_allclose(ranking, fitted["fusion"].score(inputs(xv, members=members)).ranking)
    np.testing.assert_array_equal(scorers["block_b"].score(xv)[0], fitted["block_b"].score(inputs(xv[:, 8:])).ranking)
    assert registry.saved(models)["knn"]["validation"]["ap"] is not None

    from fakedetect import cli

    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["detectors"] = {"knn": {"kind": "knn", "features": "all", "params": {}},
                           "later": {"kind": "blocks", "features": "layers", "params": {}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["detectors", "--project", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert "blocks: projection: 128" in shown and "fusion: members: required" in shown
    assert "knn: kind knn, features all" in shown and "fitted, validation AP" in shown
    assert "later: kind blocks" in shown and "not fitted" in shown
    assert "predict's default: knn: the best out-of-sample validation AP" in shown


def test_detectors_sharing_batch_scores_score_a_fusions_members_once_per_batch(tmp_path, monkeypatch):
    """serve scores every detector on each batch: with one BatchScores, the fusion reuses its members'
    scores of the same array (same figures as scored alone), and a new array is scored afresh."""
    models = tmp_path / "models" / "detectors"
    fitted, xv, _ = save_a_fusion_and_its_members(models)
    alone = {name: registry.score_function(models, name, LAYERS)[1](xv) for name in ("knn", "block_b", "fusion")}
    calls = []
    original = registry.FittedDetector.score
    monkeypatch.setattr(registry.FittedDetector, "score", lambda self, inputs: calls.append(self.name) or original(self, inputs))
    shared = registry.BatchScores()
    scorers = {name: registry.score_function(models, name, LAYERS, shared)[1] for name in ("knn", "block_b", "fusion")}
    for batch in (xv, xv.copy()):
        calls.clear()
        for name, score in scorers.items():
            np.testing.assert_array_equal(score(batch).ranking, alone[name].ranking)
        assert calls == ["knn", "block_b", "fusion"]


def test_the_named_stages_figures_are_compares(trained_project):
    """nn_eval scores compare's `knn` and linear_eval compare's `fcnn` (linear_train's head, fitted once):
    the same figures per test set, the same thresholds."""
    report = json.loads((trained_project / "reports" / "compare.json").read_text())["detectors"]
    for stage, name in (("nn_eval", "knn"), ("linear_eval", "fcnn")):
        theirs = json.loads((trained_project / "reports" / f"{stage}.json").read_text())
        ours = report[name]["report"]
        assert theirs["test_sets"] == ours["test_sets"], stage
        assert theirs["calibrated_threshold"] == ours["calibrated_threshold"]
        assert theirs["operating_thresholds"] == ours["operating_thresholds"]
        assert json.loads((trained_project / "metrics" / f"{stage}.json").read_text())[name] == \
            json.loads((trained_project / "metrics" / "compare.json").read_text())[name]
    assert not (trained_project / "models" / "detectors" / "knn" / "arrays.npz").stat().st_size > 100_000  # no bank copy
    saved = np.load(trained_project / "models" / "detectors" / "knn" / "arrays.npz")
    assert set(saved.files) == {"labels", "rows"}


@pytest.mark.fast
def test_no_silent_fallback_without_a_two_class_validation_split():
    """noise_sensitivity and fusion need both classes on validation: skipped with the reason, never a
    silent slope of 1; imported features (empty image paths) are named as such."""
    x, y, noisy = synthetic(160, 0)
    one_class = np.zeros(20, int)
    for kind, params in (("noise_sensitivity", {}), ("fusion", {"members": ["knn"]})):
        why = registry.cannot_fit(DetectorSpec(kind=kind, params=params), y, one_class)
        assert why and "needs real and fake rows" in why
        with pytest.raises(UserError, match="needs real and fake rows"):
            registry.fit(kind, DetectorSpec(kind=kind, params=params), inputs(x, noisy), y,
                         inputs(x[:20], noisy[:20], {"knn": x[:20, 0]}), one_class)
    imported = pd.DataFrame({"image": ["", ""], "image_sha256": ["", ""]})
    assert "imported features have none" in noisy_views.unavailable(imported)


@pytest.mark.fast
def test_a_fusions_validation_figures_are_cross_fitted():
    """The fusion's validation AP and thresholds come from out-of-fold scores (seeded: the same twice),
    not from the rows it was fitted on."""
    rng = np.random.default_rng(0)
    yv = np.arange(60) % 2
    members = {"a": yv + rng.normal(0, 0.8, 60), "b": rng.normal(0, 1, 60)}
    empty = np.zeros((60, 1), np.float32)
    spec = DetectorSpec(kind="fusion", params={"members": ["a", "b"]})
    first = registry.fit("fusion", spec, inputs(empty[:0]), yv[:0], inputs(empty, members=members), yv)
    again = registry.fit("fusion", spec, inputs(empty[:0]), yv[:0], inputs(empty, members=members), yv)
    assert first.validation == again.validation and first.validation["how"].startswith("cross-fitted: 5")
    in_sample = 100 * average_precision_score(yv, first.score(inputs(empty, members=members)).ranking)
    assert first.validation["ap"] != round(in_sample, 4)

"""The generalisation protocols: folds never share a source photograph; a generator that only a feature
the others lack separates loses its AP when held out; chronological windows follow the dates and an
undated generator is reported; the stage runs as a subprocess on stored features alone."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch  # noqa: F401  (before any Keras)
import yaml

from fakedetect import cli
from fakedetect import vocabulary
from fakedetect.data import generator_dates
from fakedetect.evaluation import folds, protocols
from fakedetect.features import feature_files
from fakedetect.params import DetectorSpec, EvaluationParams, ParamsError, load_params
from helpers import PROJECT, run_stage

KNN = {"knn": {"kind": "knn", "features": "all", "params": {}}}  # k: params nn (1)
KNN_SPECS = {name: DetectorSpec(**spec) for name, spec in KNN.items()}


def demo_like(per_photo: int = 6, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """Rows shaped like the demo's: training photographs with family `a` only (train and val splits), test
    photographs that each family and its reals were cut from. A fake's signal is its family's feature
    column: a and b share column 0; c alone has column 1, which neither a nor b moves."""
    rng = np.random.default_rng(seed)
    records = []
    for split, photos, families in (("train", ["t0", "t1", "t2", "t3"], ["a"]), ("val", ["v0"], ["a"]),
                                    ("test", [f"p{i}" for i in range(8)], ["a", "b", "c"])):
        for family in families:
            for photo in photos:
                for label in (0, 1):
                    records += [dict(split=split, test_set=family if split == "test" else "", label=label,
                                     generator=family if label else "real", category=photo)] * per_photo
    rows = pd.DataFrame(records)
    rows.insert(0, "id", range(len(rows)))
    x = rng.normal(size=(len(rows), 6)).astype(np.float32) + 2.0
    signal = {"a": 0, "b": 0, "c": 1}
    for family, column in signal.items():
        x[((rows.generator == family) & (rows.label == 1)).to_numpy(), column] += 4.0
    return x, rows


def params(**changes) -> EvaluationParams:
    return EvaluationParams(**changes)


def both_sides(rows: pd.DataFrame, fold: folds.Fold) -> tuple[set, set]:
    training = np.concatenate([fold.train, fold.val])
    held = np.concatenate([fold.calibration, *fold.test.values()])
    return set(rows.id.to_numpy()[training]), set(rows.id.to_numpy()[held])


@pytest.mark.fast
@pytest.mark.parametrize("protocol", ["leave_one_generator_out", "chronological"])
def test_folds_never_share_a_source_photograph(protocol):
    _, rows = demo_like()
    p = params(protocols=[protocol], generator_dates={"a": "2016", "b": "2019", "c": "2022"})
    found, _ = protocols.build_folds(rows, p, demo=True)
    assert len(found) == (3 if protocol == "leave_one_generator_out" else 2)
    for fold in found:
        training_ids, held_ids = both_sides(rows, fold)
        assert training_ids and held_ids and not training_ids & held_ids
        photo = dict(zip(rows.id, rows.category))
        assert not {photo[i] for i in training_ids} & {photo[i] for i in held_ids}, fold.name
        assert fold.skipped is None
        assert fold.photographs["held_out"] + fold.photographs["training"] <= rows.category.nunique()
        labels = dict(zip(rows.id, rows.generator))
        assert {labels[i] for i in held_ids} - {"real"} <= set().union(*fold.held_out.values())
        assert {labels[i] for i in training_ids} - {"real"} <= set(fold.training)
    held_a = next(f for f in found if f.name == "a") if protocol == "leave_one_generator_out" else None
    if held_a is not None:  # its training side: b and c from test photographs, split train / val by photograph
        train_photos = set(rows.category.to_numpy()[held_a.train])
        val_photos = set(rows.category.to_numpy()[held_a.val])
        assert val_photos and not train_photos & val_photos


@pytest.mark.fast
def test_a_real_shared_by_two_sets_lands_on_one_side():
    """Real layouts: the photograph is the file; UnivFD's LAION reals are one file in several sets."""
    records = []
    for test_set in ("ldm_200", "glide_100_27"):
        records += [dict(split="test", test_set=test_set, label=0, generator="real", image_sha256=f"laion{i}")
                    for i in range(10)]
        records += [dict(split="test", test_set=test_set, label=1, generator=test_set, image_sha256=f"{test_set}{i}")
                    for i in range(10)]
    records += [dict(split="test", test_set="guided", label=label, generator="guided" if label else "real",
                     image_sha256=f"guided{label}{i}") for label in (0, 1) for i in range(10)]
    rows = pd.DataFrame(records).assign(category="")
    rows.insert(0, "id", range(len(rows)))
    found, _ = protocols.build_folds(rows, params(protocols=["leave_one_generator_out"]), demo=False)
    for fold in found:
        training, held = both_sides(rows, fold)
        sha = dict(zip(rows.id, rows.image_sha256))
        assert not {sha[i] for i in training} & {sha[i] for i in held}
    ldm = next(f for f in found if f.name == "ldm_200")
    assert ldm.skipped is None and 0 < len(ldm.test["ldm_200"]) < 20 + 10


@pytest.mark.fast
def test_holding_out_the_family_only_its_own_feature_separates_drops_its_ap():
    x, rows = demo_like(per_photo=8)
    report = protocols.run(x, rows, [("final", 6)], KNN_SPECS, lambda *a: "no noisy views",
                           params(protocols=["leave_one_generator_out"]), demo=True)
    ap = {fold["fold"]: fold["detectors"]["knn"][fold["fold"]]["ap"] for fold in report["folds"]}
    assert ap["a"] > 90 and ap["b"] > 90  # the other of a and b taught column 0
    assert ap["c"] < 70  # nothing on the training side moves column 1
    headline = protocols.headline(report)
    assert headline["worst"]["knn"]["ap"] == round(ap["c"], 2)
    assert headline["mean"]["knn"]["ap"] == pytest.approx(np.mean(list(ap.values())), abs=0.01)
    assert headline["next"] == {}
    cells, lines = protocols.tables(report)
    assert len(cells) == 3 and lines.empty


@pytest.mark.fast
def test_chronological_windows_follow_the_dates_and_an_undated_generator_is_reported():
    x, rows = demo_like()
    rows["generator"] = rows.generator.replace({"a": "guided", "b": "progan", "c": "mystery"})
    rows["test_set"] = rows.test_set.replace({"a": "guided", "b": "progan", "c": "mystery"})
    p = params(protocols=["chronological"])
    found, about = protocols.build_folds(rows, p, demo=True)
    assert about["windows"] == [["progan"], ["guided"]] and about["undated"] == ["mystery"]
    assert about["dates"]["progan"]["date"] == "2017-10-27" and "AI-GenBench" in about["dates"]["progan"]["source"]
    assert [(f.training, f.held_out) for f in found] == [(["progan"], {"immediate_future": ["guided"],
                                                                       "future": ["guided"]})]
    dated = params(protocols=["chronological"], generator_dates={"Mystery": "2016-05"}, window=1)
    found, about = protocols.build_folds(rows, dated, demo=True)
    assert about["windows"] == [["mystery"], ["progan"], ["guided"]] and about["undated"] == []
    assert about["dates"]["mystery"]["source"] == "params.yaml evaluation.generator_dates"
    assert [f.training for f in found] == [["mystery"], ["mystery", "progan"]]
    assert found[0].held_out == {"immediate_future": ["progan"], "future": ["progan", "guided"]}
    two = params(protocols=["chronological"], generator_dates={"mystery": "2016"}, window=2)
    found, about = protocols.build_folds(rows, two, demo=True)
    assert about["windows"] == [["mystery", "progan"], ["guided"]] and len(found) == 1


@pytest.mark.fast
def test_every_generator_the_layouts_and_the_demo_name_is_dated():
    names = (vocabulary.GAN_GENERATORS | vocabulary.DIFFUSION_GENERATORS | vocabulary.AUTOREGRESSIVE_GENERATORS
             | vocabulary.OTHER_GENERATORS | set(vocabulary.DEMO_GENERATORS)
             | {"ldm_200", "ldm_200_cfg", "ldm_100", "glide_100_27", "glide_50_27", "glide_100_10"})
    assert [n for n in sorted(names) if generator_dates.date_of(n) is None] == []
    assert generator_dates.date_of("ldm_200_cfg")[0] == "2021-12-21"
    assert generator_dates.date_of("stable_diffusion_1_4")[0] == "2022-08-22"
    assert generator_dates.date_of("SDXL")[0] == "2023-07-26"
    assert generator_dates.date_of("midjourney_v5")[0] == "2023-03-15"
    assert generator_dates.date_of("flux") is None and generator_dates.date_of("sd_next") is None  # never guessed
    demo = generator_dates.chronological(vocabulary.DEMO_GENERATORS)[0]
    assert demo == ["upsample_nearest", "transposed_conv", "noise_denoise"]


@pytest.mark.fast
def test_a_bad_date_in_params_names_the_key(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"evaluation": {"generator_dates": {"mine": "May 2024"}}}))
    with pytest.raises(ParamsError, match=r"evaluation\.generator_dates\.mine"):
        load_params(params_file)


def test_the_protocols_stage_runs_as_a_subprocess(tmp_path):
    """On stored features alone (no image, no backbone): every fold of both protocols, the metrics file
    within three figures per detector, the plots' tables."""
    x, rows = demo_like()
    feature_files.save_features(tmp_path / "data" / "features", x, rows)
    settings = yaml.safe_load((PROJECT / "params.yaml").read_text())
    settings["detectors"] = KNN | {"knn_b": {"kind": "knn", "features": "all", "params": {}}}
    settings["evaluation"]["generator_dates"] = {"a": "2016", "b": "2019"}
    result = run_stage("protocols", tmp_path, settings)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no date for c" in result.stderr
    metrics = {name: json.loads((tmp_path / "metrics" / f"{name}.json").read_text())
               for name in ("protocols", "protocols_worst", "protocols_next")}
    for found in metrics.values():  # one AP per detector, named as compare's
        assert set(found) == {"knn", "knn_b"} and all(set(f) == {"ap"} for f in found.values())
    assert metrics["protocols_worst"]["knn"]["ap"] <= metrics["protocols"]["knn"]["ap"]
    report = json.loads((tmp_path / "reports" / "protocols.json").read_text())
    assert [f["fold"] for f in report["folds"]] == ["a", "b", "c", "window1"]
    assert report["chronological"]["undated"] == ["c"]
    assert set(report["folds"][0]["detectors"]["knn"]["a"]) == set(protocols.FIGURES) | {"threshold"}
    assert len(pd.read_csv(tmp_path / "plots" / "protocols" / "held_out.csv")) == 2 * 3
    assert len(pd.read_csv(tmp_path / "plots" / "protocols" / "windows.csv")) == 2 * 2


def test_the_protocol_charts_render_offline(tmp_path):
    """The protocols stage's plots as dvc.yaml declares them, drawn by `dvc plots show` with the offline
    template, in headless Chromium (skipped without one): the heatmap and the AUC lines."""
    from test_plots_page import CHROMIUM, assert_stage_charts_render

    if CHROMIUM is None:
        pytest.skip("no Chromium on PATH (set CHROMIUM=/path/to/it; .ci/run installs Debian's chromium)")
    x, rows = demo_like()
    report = protocols.run(x, rows, [("final", 6)], KNN_SPECS,
                           lambda *a: "no noisy views", params(generator_dates={"a": "2016", "b": "2019", "c": "2022"}),
                           demo=True)
    held_out, windows = protocols.tables(report)
    assert len(held_out) == 3 and len(windows) == 2 * 2
    (tmp_path / "plots" / "protocols").mkdir(parents=True)
    held_out.to_csv(tmp_path / "plots" / "protocols" / "held_out.csv", index=False)
    windows.to_csv(tmp_path / "plots" / "protocols" / "windows.csv", index=False)
    assert_stage_charts_render(tmp_path, "protocols", 2)


def two_signal_rows(seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """demo_like rows where family a's fakes move columns 0 and 2, b's and c's column 2 only."""
    x, rows = demo_like(per_photo=8, seed=seed)
    x = np.random.default_rng(seed + 1).normal(scale=0.3, size=x.shape).astype(np.float32) + 2.0
    for family, columns in {"a": [0, 2], "b": [2], "c": [2]}.items():
        fakes = np.flatnonzero(((rows.generator == family) & (rows.label == 1)).to_numpy())
        x[np.ix_(fakes, columns)] += 4.0
    return x, rows


def test_the_default_detector_changes_when_the_protocol_says_another_generalises_better(tmp_path, capsys):
    """Constructed case: `narrow` reads columns 0 and 1, where only family a (the training split's) moves,
    so it is as good as `wide` (every column) on the validation split, and chosen there (first by name).
    Held out, b is found from c (column 2) and c from b by `wide` alone: the protocol picks `wide`, with
    a threshold calibrated on held-out rows of b and c, and predict's default follows it; without the
    protocol's report the validation choice, `narrow`, stands."""
    from fakedetect.predict import default_detector
    from fakedetect.evaluation import compare

    x, rows = two_signal_rows()
    layers = [("first", 2), ("rest", 4)]
    detectors = {"narrow": DetectorSpec(kind="knn", features="layer:first"),
                 "wide": DetectorSpec(kind="knn", features="all")}
    models = tmp_path / "models" / "detectors"
    fitted = compare.run(x, rows, layers, detectors, lambda *a: "none").fitted
    for name, detector in fitted.items():
        detector.save(models / name)
    assert fitted["narrow"].validation["ap"] >= fitted["wide"].validation["ap"]
    assert default_detector(tmp_path)[0] == "narrow"  # no protocol: the validation AP (first by name on a tie)
    report = protocols.run(x, rows, layers, detectors, lambda *a: "none",
                           params(protocols=["leave_one_generator_out"]), demo=True, models=models)
    held = protocols.headline(report)["mean"]
    assert held["wide"]["ap"] > held["narrow"]["ap"] + 10
    choice = report["choice"]
    assert choice["detector"] == "wide" and choice["protocol"] == "leave_one_generator_out"
    assert choice["held_out_ap"] == held["wide"]["ap"] and choice["threshold"] is not None
    assert "held-out rows of generators the saved detector never trained on" in choice["calibration"]
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "protocols.json").write_text(json.dumps(report))
    name, chosen, why = default_detector(tmp_path)
    assert name == "wide" and chosen["threshold"] == choice["threshold"] and "held-out AP" in why
    settings = yaml.safe_load((PROJECT / "params.yaml").read_text())
    settings["detectors"] = {name: spec.model_dump() for name, spec in detectors.items()}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(settings))
    assert cli.main(["detectors", "--project", str(tmp_path)]) == 0
    assert "predict's default: wide: the best mean held-out AP" in capsys.readouterr().out

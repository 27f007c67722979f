"""The offline demo set: disjoint source photos, no size/format shortcut (but in the set format_biased, built
so), gray stays gray, a strength knob."""
import numpy as np
import pytest
from PIL import Image

from fakedetect.data import demo, manifests
from fakedetect.params import DemoParams
from helpers import run_stage, small_demo_params


@pytest.mark.fast
def test_source_photos_ship_with_installed_packages_and_splits_are_disjoint():
    for name in demo.PHOTOS:
        assert demo.photo_path(name).is_file(), name
        assert min(Image.open(demo.photo_path(name)).size) >= 256, name
    splits = {s: {p for p, (_, _, split) in demo.PHOTOS.items() if split == s} for s in ("train", "val", "test")}
    assert all(splits.values())
    assert not (splits["train"] & splits["val"] or splits["train"] & splits["test"] or splits["val"] & splits["test"])


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    result = run_stage("ingest", folder, small_demo_params())
    assert result.returncode == 0, result.stderr
    return folder, manifests.read_manifest(folder / "data/manifest.csv")


def test_demo_sets_layout_and_shared_format(manifest):
    folder, rows = manifest
    assert set(rows.status) == {"ok"}
    sets = rows.groupby(["split", "test_set", "label"]).size().to_dict()
    assert sets[("train", "", 0)] == sets[("train", "", 1)] == 12
    assert sets[("test", "noise_denoise", 1)] == sets[("test", "real_jpeg80", 0)] == 6
    assert ("test", "real_blur", 1) not in sets
    assert set(rows[rows.label == 1].family) == {"gan", "diffusion"}
    clean = rows[rows.test_set != demo.FORMAT_BIASED]  # every set but the one built biased on purpose
    assert (clean.width == 224).all() and (clean.height == 224).all()
    for test_set, group in clean.groupby("test_set"):
        formats = {p.rsplit(".", 1)[1] for p in group.path}
        assert formats == ({"jpg"} if test_set == "real_jpeg80" else {"png"}), test_set
    biased = rows[rows.test_set == demo.FORMAT_BIASED]
    reals, fakes = biased[biased.label == 0], biased[biased.label == 1]
    assert len(reals) == len(fakes) == 6 and set(fakes.family) == {"gan"}
    assert {p.rsplit(".", 1)[1] for p in reals.path} == {"jpg"} and {p.rsplit(".", 1)[1] for p in fakes.path} == {"png"}
    assert set(reals.width) == set(demo.BIASED_REAL_SIZES) and set(fakes.width) == {demo.BIASED_FAKE_SIZE}
    photos = {split: set(group.category) for split, group in rows.groupby("split")}
    assert not (photos["train"] & photos["test"] or photos["val"] & photos["test"] or photos["train"] & photos["val"])


def _job(kind, photo="camera"):
    return demo.Job(path="unused", photo=photo, stream="test/x/1", index=3, kind=kind)


@pytest.mark.parametrize("family", sorted(demo.SIMULATORS))
@pytest.mark.fast
def test_gray_photos_stay_gray_and_strength_scales_the_artifact(family):
    params = DemoParams()
    real, rng = demo._patch(_job(family), params)
    assert (real[..., 0] == real[..., 1]).all()  # camera is a gray photo
    distances = []
    for strength in (0.5, 1.0, 2.0):
        fake = demo.SIMULATORS[family](real.astype(np.float32), strength, params.seed, np.random.default_rng(0))
        assert fake.shape == real.shape
        assert np.allclose(fake[..., 0], fake[..., 1]) and np.allclose(fake[..., 1], fake[..., 2])
        distances.append(np.abs(fake - real).mean())
    assert distances[0] < distances[1] < distances[2]


def test_existing_foreign_folder_is_never_deleted(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/thesis.tex").write_text("precious")
    params = small_demo_params()
    params["ingest"]["demo"]["out_dir"] = "mine"
    result = run_stage("ingest", tmp_path, params)
    assert result.returncode == 1 and "ingest.demo.out_dir" in result.stderr
    assert (tmp_path / "mine/thesis.tex").read_text() == "precious"

"""Every dataset layout of docs/real_data.md "Real data" -> exact manifest rows (labels from folders, never file names)."""
import json

import pytest

from fakedetect.data import layouts, manifests, reading
from fakedetect.data.images import Limits
from fakedetect.params import DatasetSource
from fakedetect.stage import UserError
from helpers import assert_stopped, run_stage, write_image


def rows_of(sources, max_per_class=None, seed=0):
    found = layouts.scan(sources)
    candidates = manifests.sample_test_sets(found.candidates, max_per_class, seed)
    manifest = reading.build_manifest(candidates, Limits(), workers=1)[0]
    return [(r.split, r.test_set, r.label, r.generator, r.family, r.category, r.path.rsplit("/", 1)[-1])
            for r in manifest.itertuples()], manifest


@pytest.mark.fast
def test_wang2020_training_layout_with_class_subset(tmp_path):
    root = tmp_path / "CNNDetection"
    for cls in ("car", "cat", "dog"):
        write_image(root / "train/progan" / cls / "0_real" / f"{cls}.real.v2.png")
        write_image(root / "train/progan" / cls / "1_fake" / f"{cls}.FAKE.JPG", format="JPEG")
    write_image(root / "val/progan/car/0_real/v.png")
    sources = [DatasetSource(layout="wang2020", root=str(root), split="train", classes=["car", "cat"]),
               DatasetSource(layout="wang2020", root=str(root), split="val")]
    rows, manifest = rows_of(sources)
    assert rows == [
        ("train", "", 0, "real", "real", "car", "car.real.v2.png"),
        ("train", "", 0, "real", "real", "cat", "cat.real.v2.png"),
        ("train", "", 1, "progan", "gan", "car", "car.FAKE.JPG"),
        ("train", "", 1, "progan", "gan", "cat", "cat.FAKE.JPG"),
        ("val", "", 0, "real", "real", "car", "v.png"),
    ]
    assert list(manifest.id) == [0, 1, 2, 3, 4]
    assert set(manifest.status) == {"ok"} and set(manifest.width) == {48} and set(manifest.height) == {40}


@pytest.mark.fast
def test_wang2020_missing_class_names_the_key(tmp_path):
    write_image(tmp_path / "train/progan/car/0_real/a.png")
    with pytest.raises(UserError, match=r"ingest.datasets.0.classes: classes \['horse'\] not found"):
        layouts.scan([DatasetSource(layout="wang2020", root=str(tmp_path), split="train", classes=["horse"])])


@pytest.mark.fast
def test_cnndetection_test_sets_with_and_without_class_folders(tmp_path):
    write_image(tmp_path / "stylegan/bedroom/0_real/a.png")
    write_image(tmp_path / "stylegan/bedroom/1_fake/b.png")
    write_image(tmp_path / "stylegan/car/1_fake/c.png")
    write_image(tmp_path / "biggan/0_real/d.jpeg", format="JPEG")
    write_image(tmp_path / "biggan/1_fake/e.Png", format="PNG")
    write_image(tmp_path / "crn/1_fake/f.png")
    rows, _ = rows_of([DatasetSource(layout="cnndetection_test", root=str(tmp_path), sets=["stylegan", "biggan", "crn"])])
    assert rows == [
        ("test", "biggan", 0, "real", "real", "", "d.jpeg"),
        ("test", "biggan", 1, "biggan", "gan", "", "e.Png"),
        ("test", "crn", 1, "crn", "other", "", "f.png"),
        ("test", "stylegan", 0, "real", "real", "bedroom", "a.png"),
        ("test", "stylegan", 1, "stylegan", "gan", "bedroom", "b.png"),
        ("test", "stylegan", 1, "stylegan", "gan", "car", "c.png"),
    ]


@pytest.mark.fast
def test_univfd_diffusion_sets_share_real_pools(tmp_path):
    write_image(tmp_path / "laion/0_real/l1.png")
    write_image(tmp_path / "laion/0_real/l2.png")
    write_image(tmp_path / "imagenet/0_real/i1.png")
    write_image(tmp_path / "ldm_200/1_fake/x.png")
    write_image(tmp_path / "glide_100_27/1_fake/y.png")
    write_image(tmp_path / "guided/1_fake/z.png")
    rows, manifest = rows_of([DatasetSource(layout="univfd_diffusion", root=str(tmp_path))])
    assert rows == [
        ("test", "glide_100_27", 0, "real", "real", "", "l1.png"),
        ("test", "glide_100_27", 0, "real", "real", "", "l2.png"),
        ("test", "glide_100_27", 1, "glide_100_27", "diffusion", "", "y.png"),
        ("test", "guided", 0, "real", "real", "", "i1.png"),
        ("test", "guided", 1, "guided", "diffusion", "", "z.png"),
        ("test", "ldm_200", 0, "real", "real", "", "l1.png"),
        ("test", "ldm_200", 0, "real", "real", "", "l2.png"),
        ("test", "ldm_200", 1, "ldm_200", "diffusion", "", "x.png"),
    ]
    # One shared real file, one hash, wherever it appears.
    assert manifest[manifest.path.str.endswith("l1.png")].sha256.nunique() == 1


@pytest.mark.fast
def test_diffusion_set_without_its_real_pool_names_the_key(tmp_path):
    write_image(tmp_path / "guided/1_fake/z.png")
    with pytest.raises(UserError, match="ingest.datasets.0.root: diffusion set 'guided'.*imagenet"):
        layouts.scan([DatasetSource(layout="univfd_diffusion", root=str(tmp_path))])


@pytest.mark.fast
def test_generic_folders_real_fake_below_any_depth(tmp_path):
    root = tmp_path / "my_photos"
    write_image(root / "batch.1/real/a.b.c.PNG")
    write_image(root / "batch.1/fake/d.webp", format="WEBP")
    write_image(root / "1_fake/e.bmp", format="BMP")
    (root / "1_fake/notes.txt").write_text("not an image")
    rows, _ = rows_of([DatasetSource(layout="generic", root=str(root), family="diffusion")])
    assert rows == [
        ("test", "my_photos", 0, "real", "real", "batch.1", "a.b.c.PNG"),
        ("test", "my_photos", 1, "my_photos", "diffusion", "", "e.bmp"),
        ("test", "my_photos", 1, "my_photos", "diffusion", "batch.1", "d.webp"),
    ]
    assert layouts.scan([DatasetSource(layout="generic", root=str(root))]).ignored_files == 1


@pytest.mark.fast
def test_labels_come_from_folders_not_file_names(tmp_path):
    write_image(tmp_path / "set/0_real/1_fake.png")
    write_image(tmp_path / "set/1_fake/0_real_fake_real.png")
    rows, _ = rows_of([DatasetSource(layout="generic", root=str(tmp_path / "set"))])
    assert [(r[2], r[6]) for r in rows] == [(0, "1_fake.png"), (1, "0_real_fake_real.png")]


@pytest.mark.fast
def test_sampling_is_seeded_per_set_and_capped_per_class(tmp_path):
    for i in range(10):
        write_image(tmp_path / f"a/0_real/r{i}.png", seed=i)
        write_image(tmp_path / f"a/1_fake/f{i}.png", seed=100 + i)
    write_image(tmp_path / "b/1_fake/only.png")
    source = [DatasetSource(layout="cnndetection_test", root=str(tmp_path))]
    first, _ = rows_of(source, max_per_class=3, seed=0)
    again, _ = rows_of(source, max_per_class=3, seed=0)
    other, _ = rows_of(source, max_per_class=3, seed=1)
    assert first == again and first != other
    counts = [(r[1], r[2]) for r in first]
    assert counts.count(("a", 0)) == 3 and counts.count(("a", 1)) == 3 and counts.count(("b", 1)) == 1


def test_root_that_does_not_exist_stops_the_stage_naming_the_key(tmp_path):
    params = {"images": ["datasets"], "ingest": {
                         "datasets": [{"layout": "generic", "root": str(tmp_path / "nowhere")}]}}
    result = run_stage("ingest", tmp_path, params)
    assert_stopped(result, "ingest.datasets.0.root", "does not exist")
    assert not (tmp_path / "data/manifest.csv").exists()


def test_ingest_stage_writes_manifest_and_counts(tmp_path):
    write_image(tmp_path / "in/test/gaugan/0_real/a.png")
    write_image(tmp_path / "in/test/gaugan/1_fake/b.png")
    (tmp_path / "in/test/crn/1_fake").mkdir(parents=True)
    params = {"images": ["datasets"], "ingest": {"workers": 2,
                         "datasets": [{"layout": "cnndetection_test", "root": "in/test"}]}}
    result = run_stage("ingest", tmp_path, params)
    assert result.returncode == 0, result.stderr
    manifest = manifests.read_manifest(tmp_path / "data/manifest.csv")
    assert list(manifest.columns) == manifests.COLUMNS
    assert list(manifest.path) == ["in/test/gaugan/0_real/a.png", "in/test/gaugan/1_fake/b.png"]
    report = json.loads((tmp_path / "reports/ingest.json").read_text())
    assert report["sets"] == {"test/gaugan": {"real": 1, "fake": 1}}
    assert report["empty_folders"] == ["in/test/crn/1_fake"]
    assert report["image_folders"] == {"read": ["in/test/gaugan/0_real", "in/test/gaugan/1_fake"],
                                       "left_out_by_params": {}, "ignored": {}}
    metrics = json.loads((tmp_path / "metrics/ingest.json").read_text())
    assert metrics == {"source": "datasets", "files": {"read": 2, "ok": 2, "skipped": 0}, "test_sets": 1,
                       "ignored_image_folders": 0}
    assert report["rows"] == {"total": 2, "ok": 2, "skipped": 0}

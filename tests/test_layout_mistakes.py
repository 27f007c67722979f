"""Dataset roots that do not fit their layout stop ingest with a message naming the params entry;
image folders that are legitimately not read are named with the reason; files and rows are
counted apart; generator families are honest."""
import json

import pytest

from fakedetect import vocabulary
from fakedetect.data import layouts
from fakedetect.params import DatasetSource as Source
from fakedetect.stage import UserError
from helpers import assert_stopped, run_stage, write_image


def pairs(folder, n=1):
    """n real and n fake images in folder/0_real and folder/1_fake."""
    for i in range(n):
        write_image(folder / "0_real" / f"r{i}.png", seed=i)
        write_image(folder / "1_fake" / f"f{i}.png", seed=100 + i)


def cnndetection_root(root):
    """CNNDetection's top folder: train/ and val/ (wang2020), and test/ with and without class folders."""
    for split in ("train", "val"):
        pairs(root / split / "progan" / "car")
    for name in ("biggan", "gaugan", "stargan"):
        pairs(root / "test" / name)
    for name, cls in (("progan", "car"), ("stylegan", "car"), ("cyclegan", "horse")):
        pairs(root / "test" / name / cls)
    return root


@pytest.mark.fast
def test_test_layout_given_the_dataset_top_folder_stops_naming_the_entry(tmp_path):
    """The new user's mistake: the CNNDetection root (train/, val/, test/) as a cnndetection_test root
    made one set 'test' of biggan, gaugan and stargan, and dropped the sets with class folders."""
    root = cnndetection_root(tmp_path / "CNNDetection")
    sources = [Source(layout="wang2020", root=str(root), split="train"),
               Source(layout="wang2020", root=str(root), split="val"),
               Source(layout="cnndetection_test", root=str(root))]
    with pytest.raises(UserError, match=r"ingest.datasets.2.root: .*CNNDetection holds test/, train/, val/: "
                                        r"folders named like splits.*root: .*CNNDetection/test"):
        layouts.scan(sources)
    sources[2] = Source(layout="cnndetection_test", root=str(root / "test"))
    found = layouts.scan(sources)
    assert {c.test_set for c in found.candidates} == {"", "biggan", "gaugan", "stargan", "progan", "stylegan", "cyclegan"}
    assert not found.ignored_folders and not found.unselected_folders


@pytest.mark.parametrize("layout", ["generic", "univfd_diffusion"])
@pytest.mark.fast
def test_other_layouts_refuse_split_folders_too(tmp_path, layout):
    pairs(tmp_path / "data/test/biggan")
    with pytest.raises(UserError, match="ingest.datasets.0.root: .* holds test/: folders named like splits"):
        layouts.scan([Source(layout=layout, root=str(tmp_path / "data"))])


@pytest.mark.fast
def test_a_set_with_label_folders_at_two_depths_stops(tmp_path):
    pairs(tmp_path / "test/stylegan")  # stylegan/{0_real,1_fake}
    pairs(tmp_path / "test/stylegan/car")  # and stylegan/car/{0_real,1_fake}: which is the set?
    with pytest.raises(UserError, match=r"ingest.datasets.0.root: .*stylegan has label folders at depths 1, 2 "
                                        r"\(0_real/, 1_fake/, car/0_real/, car/1_fake/\)"):
        layouts.scan([Source(layout="cnndetection_test", root=str(tmp_path / "test"))])


@pytest.mark.fast
def test_generator_folders_that_would_be_merged_into_one_set_stop(tmp_path):
    """A root one level too high, without split names: biggan and gaugan would become classes of one set."""
    pairs(tmp_path / "all/cnn_sets/biggan")
    pairs(tmp_path / "all/cnn_sets/gaugan")
    with pytest.raises(UserError, match=r"ingest.datasets.0.root: test set 'cnn_sets' .* holds generator folders "
                                        r"\['biggan', 'gaugan'\] as its classes.*give root: .*all/cnn_sets"):
        layouts.scan([Source(layout="cnndetection_test", root=str(tmp_path / "all"))])
    with pytest.raises(UserError, match=r"ingest.datasets.0.root: .* generators \['biggan', 'gaugan'\]"):
        layouts.scan([Source(layout="generic", root=str(tmp_path / "all/cnn_sets"))])


@pytest.mark.fast
def test_training_classes_missing_stops(tmp_path):
    pairs(tmp_path / "train/progan")  # progan/{0_real,1_fake}: no class folders
    with pytest.raises(UserError, match=r"ingest.datasets.0.root: .*progan has label folders at depth 1 .*"
                                        r"expected .*progan/<class>/\{0_real,1_fake\}"):
        layouts.scan([Source(layout="wang2020", root=str(tmp_path), split="train")])


@pytest.mark.fast
def test_images_in_no_place_the_layout_reads_stop_when_nothing_else_is_read(tmp_path):
    write_image(tmp_path / "diffusion/ldm_200/fake/a.png")  # 'fake', no 1_fake: not a univfd_diffusion set
    with pytest.raises(UserError, match=r"ingest.datasets.0.root: .*diffusion holds images, but none where the "
                                        r"univfd_diffusion layout reads them .*ldm_200/fake/"):
        layouts.scan([Source(layout="univfd_diffusion", root=str(tmp_path / "diffusion"))])


def test_folders_not_read_are_named_with_why_in_the_report_and_the_log(tmp_path):
    root = tmp_path / "test"
    pairs(root / "biggan")
    write_image(root / "biggan/previews/p.png")  # beside the label folders: read by no rule
    pairs(root / "crn")  # left out by ingest.datasets.0.sets
    pairs(root / "progan/car")
    pairs(root / "progan/cat")  # left out by ingest.datasets.0.classes
    params = {"images": ["datasets"], "ingest": {"workers": 1, "datasets": [
        {"layout": "cnndetection_test", "root": "test", "sets": ["biggan", "progan"], "classes": ["car"]}]}}
    result = run_stage("ingest", tmp_path, params)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "reports/ingest.json").read_text())
    folders = report["image_folders"]
    assert folders["read"] == ["test/biggan/0_real", "test/biggan/1_fake", "test/progan/car/0_real",
                               "test/progan/car/1_fake"]
    assert folders["left_out_by_params"] == {
        "test/crn/0_real": "not in ingest.datasets.0.sets", "test/crn/1_fake": "not in ingest.datasets.0.sets",
        "test/progan/cat/0_real": "not in ingest.datasets.0.classes",
        "test/progan/cat/1_fake": "not in ingest.datasets.0.classes"}
    assert folders["ignored"] == {
        "test/biggan/previews": "ingest.datasets.0: not where the cnndetection_test layout reads images"}
    assert json.loads((tmp_path / "metrics/ingest.json").read_text())["ignored_image_folders"] == 1
    assert "not read: test/biggan/previews (ingest.datasets.0: not where" in result.stderr
    assert "not read: test/crn/0_real (not in ingest.datasets.0.sets)" in result.stderr


def test_wrong_root_stops_the_stage_without_a_manifest(tmp_path):
    cnndetection_root(tmp_path / "CNNDetection")
    params = {"images": ["datasets"], "ingest": {"workers": 1, "datasets": [
        {"layout": "cnndetection_test", "root": str(tmp_path / "CNNDetection")}]}}
    result = run_stage("ingest", tmp_path, params)
    assert_stopped(result, "ingest.datasets.0.root", "folders named like splits")
    assert not (tmp_path / "data/manifest.csv").exists()


def test_files_and_rows_are_counted_apart(tmp_path):
    """Two LAION reals shared by two diffusion sets: 4 files, 6 rows."""
    root = tmp_path / "diffusion_datasets"
    for i in range(2):
        write_image(root / f"laion/0_real/l{i}.png", seed=i)
    write_image(root / "ldm_200/1_fake/x.png", seed=10)
    write_image(root / "glide_100_27/1_fake/y.png", seed=11)
    params = {"images": ["datasets"], "ingest": {"workers": 1,
                         "datasets": [{"layout": "univfd_diffusion", "root": str(root)}]}}
    result = run_stage("ingest", tmp_path, params)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics/ingest.json").read_text())
    assert metrics["files"] == {"read": 4, "ok": 4, "skipped": 0}
    assert json.loads((tmp_path / "reports/ingest.json").read_text())["rows"] == {"total": 6, "ok": 6, "skipped": 0}
    assert "4 files read (4 ok, 0 skipped)" in result.stderr and "6 manifest rows (6 ok, 0 skipped)" in result.stderr


@pytest.mark.fast
def test_dalle_is_autoregressive(tmp_path):
    """DALL-E mini predicts VQGAN tokens with a transformer: no diffusion."""
    assert vocabulary.family_of("dalle") == "autoregressive"
    assert vocabulary.family_of("ldm_200") == vocabulary.family_of("guided") == "diffusion"
    write_image(tmp_path / "laion/0_real/l.png")
    write_image(tmp_path / "dalle/1_fake/d.png")
    found = layouts.scan([Source(layout="univfd_diffusion", root=str(tmp_path))])
    assert {(c.generator, c.family) for c in found.candidates} == {("real", "real"), ("dalle", "autoregressive")}
    assert Source(layout="generic", root=".", family="autoregressive").family == "autoregressive"


@pytest.mark.fast
def test_a_folder_one_entry_does_not_read_but_another_does_is_not_ignored(tmp_path):
    root = tmp_path / "diffusion_datasets"
    write_image(root / "laion/0_real/l.png")
    write_image(root / "ldm_200/1_fake/x.png")
    pairs(root / "extra/mine")  # no 1_fake at extra/: not a univfd_diffusion set, but the generic entry reads it
    diffusion = Source(layout="univfd_diffusion", root=str(root))
    assert list(layouts.scan([diffusion]).ignored_folders) == [str(root / "extra/mine/0_real"),
                                                               str(root / "extra/mine/1_fake")]
    found = layouts.scan([diffusion, Source(layout="generic", root=str(root / "extra"))])
    assert not found.ignored_folders and {c.test_set for c in found.candidates} == {"ldm_200", "extra"}

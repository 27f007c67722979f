"""One schema for params.yaml: a bad key or value stops a stage before any work, naming the key."""
import re

import pytest
import yaml

from fakedetect.params import Params, ParamsError, kind_schema, load_params
from helpers import PROJECT, assert_stopped, run_stage, small_demo_params


@pytest.mark.fast
def test_the_shipped_params_file_is_valid():
    assert isinstance(load_params(PROJECT / "params.yaml"), Params)


@pytest.mark.parametrize("edit, key, expected", [
    (lambda p: p["ingest"].update(sorce="demo"), "ingest.sorce", "unknown key"),
    (lambda p: p["preprocess"].update(size="big"), "preprocess.size", "valid integer"),
    (lambda p: p["preprocess"].update(train_protocol="mixup"), "preprocess.train_protocol", "'notebook' or 'blur_jpeg'"),
    (lambda p: p["ingest"]["demo"].update(train_family="stylegan"), "ingest.demo.train_family", "upsample_nearest"),
    (lambda p: p["preprocess"]["notebook"].update(blur_kernel=4), "preprocess.notebook", "blur_kernel must be odd"),
    (lambda p: p["ingest"].update(datasets=[{"layout": "wang2020"}]), "ingest.datasets.0.root", "Field required"),
])
@pytest.mark.fast
def test_bad_values_name_their_key(tmp_path, edit, key, expected):
    params = small_demo_params()
    edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError) as caught:
        load_params(tmp_path / "params.yaml")
    assert f"{key}:" in str(caught.value) and expected in str(caught.value)


@pytest.mark.parametrize("edit, expected", [
    (lambda p: p.update(images=["datasets"]), "images is [datasets] but ingest.datasets is empty"),
    (lambda p: p.update(images=[]), "images is [] and extract.imports is empty"),
    (lambda p: p["extract"].update(imports={"mine": [{"file": "f.npy", "split": "train", "label": 0}]}),
     "images is ['demo'] and extract.imports names ['mine']: imported features replace the images"),
])
@pytest.mark.fast
def test_the_pipelines_input_is_images_or_imported_features(tmp_path, edit, expected):
    """DVC makes the image stages per `images` entry and import_features per `extract.imports` entry:
    exactly one of the two may be non-empty."""
    params = small_demo_params()
    edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=re.escape(expected)):
        load_params(tmp_path / "params.yaml")


def test_every_stage_checks_the_whole_file_before_any_work(tmp_path):
    params = small_demo_params()
    params["preprocess"]["blur_jpeg"]["jpeg_quality"] = [90, 30]
    result = run_stage("ingest", tmp_path, params)
    assert_stopped(result, "preprocess.blur_jpeg", "jpeg_quality")
    assert not (tmp_path / "data").exists()


@pytest.mark.fast
def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("ingest: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


def _keys(tree, prefix="") -> set[str]:
    """Every key path of a nested mapping (lists are values)."""
    if not isinstance(tree, dict):
        return set()
    return {f"{prefix}{key}" for key in tree} | {
        path for key, value in tree.items() for path in _keys(value, f"{prefix}{key}.")}


@pytest.mark.fast
def test_the_schema_defaults_are_what_params_yaml_sets():
    """One source of defaults: params.yaml holds the schema's default values, and spells out every
    key that has one (only optional filters, null by default, may be left out), so that no stage
    runs on a value that the file does not show."""
    shipped = yaml.safe_load((PROJECT / "params.yaml").read_text())
    defaults = Params().model_dump(mode="json")
    loaded = Params.model_validate(shipped).model_dump(mode="json")
    assert loaded.keys() == defaults.keys()
    for section in defaults:  # one section at a time: a failure names the section that drifted
        assert (section, loaded[section]) == (section, defaults[section])
    left_out = sorted(_keys(defaults) - _keys(shipped))
    # a detector whose recipe lives in nn or linear leaves its params empty: they come from there
    from_recipes = {f"detectors.{name}.params." for name, spec in Params().detectors.items()
                    if getattr(kind_schema(spec.kind), "recipe", None)}
    assert all(key.endswith(".generators") or key.startswith(tuple(from_recipes)) for key in left_out), left_out
    assert all(shipped["detectors"][prefix.split(".")[1]]["params"] == {} for prefix in from_recipes)


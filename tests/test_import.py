"""Importing precomputed features: the notebook project's .pt tensors (the acceptance fixture),
.npy and .npz, with row ranges; unsafe or inconsistent files are refused naming the key."""
import json

import numpy as np
import pytest
import torch
import yaml

from fakedetect.features import feature_files, imports
from fakedetect.params import ExtractParams, ImportSource
from fakedetect.stage import UserError
from helpers import run_stage, stage_env


def fixture_imports(folder) -> list[dict]:
    """The six tensors with the labels of ../shared/fixtures/README.md: fake.pt holds REAL images and
    real.pt FAKE ones (swapped names); test.pt and test1.pt have a stray row 1000, dropped."""
    f = lambda name: str(folder / "seed_clip_features" / name)  # noqa: E731
    return [
        dict(file=f("fake.pt"), split="train", label=0),
        dict(file=f("real.pt"), split="train", label=1, generator="progan"),
        dict(file=f("test.pt"), rows=[0, 500], split="test", test_set="glide_100", label=1),
        dict(file=f("test.pt"), rows=[500, 1000], split="test", test_set="glide_100", label=0),
        dict(file=f("test1.pt"), rows=[0, 500], split="test", test_set="dalle", label=1),
        dict(file=f("test1.pt"), rows=[500, 1000], split="test", test_set="dalle", label=0),
        dict(file=f("test_cg.pt"), rows=[0, 500], split="test", test_set="cyclegan", label=0),
        dict(file=f("test_cg.pt"), rows=[500, 1000], split="test", test_set="cyclegan", label=1),
        dict(file=f("test_dm.pt"), rows=[0, 500], split="test", test_set="glide_100_dm", label=0),
        dict(file=f("test_dm.pt"), rows=[500, 1000], split="test", test_set="glide_100_dm", label=1),
    ]


def test_notebook_fixture_imports_and_flows_through_tsne(tmp_path, shared_fixtures):
    params = {"images": [], "extract": {"model": "ViT-L-14", "pretrained": "openai",
                                        "imports": {"notebook": fixture_imports(shared_fixtures)}},
              "tsne": {"max_points": 200, "perplexity": 20}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("extract_clip", "tsne"):
        result = run_stage(stage, tmp_path, timeout=120, env=stage_env(HF_HUB_OFFLINE="1"))
        assert result.returncode == 0, result.stderr
    matrix, rows = feature_files.load_features(tmp_path / "data" / "features")
    assert matrix.shape == (6000, 768) and matrix.dtype == np.float32
    train = rows[rows.split == "train"]
    assert len(train) == 2000 and list(train.label.value_counts().sort_index()) == [1000, 1000]
    assert set(train[train.label == 1].generator) == {"progan"} and set(train[train.label == 1].family) == {"gan"}
    tests = rows[rows.split == "test"].groupby("test_set").label
    assert {name: (int((g == 0).sum()), int((g == 1).sum())) for name, g in tests} == {
        name: (500, 500) for name in ("cyclegan", "dalle", "glide_100", "glide_100_dm")}
    family = rows[(rows.label == 1) & (rows.split == "test")].groupby("test_set").family.first()
    assert family.to_dict() == {"cyclegan": "gan", "dalle": "autoregressive", "glide_100": "diffusion",
                                "glide_100_dm": "diffusion"}
    test_pt = torch.load(shared_fixtures / "seed_clip_features" / "test.pt", map_location="cpu", weights_only=True)
    glide = rows.index[rows.test_set == "glide_100"]
    np.testing.assert_array_equal(matrix[glide], test_pt[:1000].numpy())  # fakes then reals, row 1000 dropped
    assert rows.source[glide[0]].endswith("test.pt:0") and rows.source[glide[-1]].endswith("test.pt:999")
    metrics = json.loads((tmp_path / "metrics" / "extract.json").read_text())
    assert (metrics["source"], metrics["model"], metrics["rows"], metrics["dimension"]) == ("import", "ViT-L-14", 6000, 768)
    coords = (tmp_path / "plots" / "tsne.csv").read_text().splitlines()
    assert coords[0] == "id,split,test_set,label,generator,family,x,y" and len(coords) == 201
    assert (tmp_path / "plots" / "tsne.png").stat().st_size > 10_000


@pytest.mark.fast
def test_npy_and_npz_with_row_ranges(tmp_path):
    a = np.arange(40, dtype=np.float64).reshape(10, 4)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "b.npz", train=a[:6].astype(np.float16), other=a)
    sources = [ImportSource(file=str(tmp_path / "a.npy"), rows=(2, 5), split="val", label=0),
               ImportSource(file=str(tmp_path / "b.npz"), key="train", split="train", label=1, generator="stylegan"),
               ImportSource(file=str(tmp_path / "a.npy"), rows=(9, 10), split="test", test_set="x", label=1)]
    matrix, rows = imports.import_features(sources, "extract.imports")
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, np.concatenate([a[2:5], a[:6], a[9:]]).astype(np.float32))
    assert list(rows.id) == list(range(10))
    assert list(rows.split) == ["val"] * 3 + ["train"] * 6 + ["test"]
    assert list(rows.generator) == ["real"] * 3 + ["stylegan"] * 6 + ["x"]
    assert list(rows.family) == ["real"] * 3 + ["gan"] * 6 + ["other"]


@pytest.mark.fast
def test_pickled_npy_is_refused(tmp_path):
    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match=r"extract\.imports\.0\.file: .* cannot be read safely"):
        imports.import_features([ImportSource(file=str(path), split="train", label=0)], "extract.imports")


@pytest.mark.fast
def test_pickled_pt_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save(object(), path)  # an arbitrary pickled object, not a tensor
    with pytest.raises(UserError, match=r"extract\.imports\.0\.file: .* cannot be read safely"):
        imports.import_features([ImportSource(file=str(path), split="train", label=0)], "extract.imports")


@pytest.mark.parametrize("second, match", [
    (dict(rows=(5, 11)), r"extract\.imports\.1\.rows: \[5, 11\) goes past the 10 rows"),
    (dict(file="wide.npy"), r"extract\.imports\.1\.file: .*wide\.npy has 5 columns"),
    (dict(file="two.npz"), r"extract\.imports\.1\.key: .* holds arrays \['p', 'q'\]"),
    (dict(file="two.npz", key="r"), r"extract\.imports\.1\.key: .* has no array 'r'"),
    (dict(file="nan.npy"), r"extract\.imports\.1\.file: .* NaN"),
    (dict(file="missing.pt"), r"extract\.imports\.1\.file: .*missing\.pt not found"),
])
@pytest.mark.fast
def test_inconsistent_imports_name_the_key(tmp_path, second, match):
    np.save(tmp_path / "a.npy", np.zeros((10, 4), np.float32))
    np.save(tmp_path / "wide.npy", np.zeros((10, 5), np.float32))
    np.save(tmp_path / "nan.npy", np.full((10, 4), np.nan, np.float32))
    np.savez(tmp_path / "two.npz", p=np.zeros((10, 4)), q=np.zeros((10, 4)))
    second = {"file": "a.npy"} | second
    sources = [ImportSource(file=str(tmp_path / "a.npy"), split="train", label=0),
               ImportSource(**second | {"file": str(tmp_path / second["file"])}, split="train", label=1)]
    with pytest.raises(UserError, match=match):
        imports.import_features(sources, "extract.imports")


@pytest.mark.fast
def test_import_params_are_validated():
    with pytest.raises(ValueError, match="test rows need a test_set"):
        ImportSource(file="a.pt", split="test", label=1)
    with pytest.raises(ValueError, match="start < stop"):
        ImportSource(file="a.pt", rows=(5, 5), split="train", label=1)
    with pytest.raises(ValueError, match="at least 1 item"):
        ExtractParams(imports={"notebook": []})
    with pytest.raises(ValueError, match="at most 1 item"):
        ExtractParams(imports={"a": [ImportSource(file="a.pt", split="train", label=1)],
                               "b": [ImportSource(file="b.pt", split="train", label=1)]})

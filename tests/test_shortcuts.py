"""File facts, the shortcut audit, fingerprints and the benchmark card, on small folders of known
formats, sizes and JPEG qualities (docs/shortcuts.md)."""
import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

from fakedetect.data import file_facts, fingerprints
from fakedetect.evaluation import shortcuts
from helpers import PROJECT, run_stage, small_demo_params, stage_env

AUDITED = ["format", "size", "jpeg_quality", "chroma_subsampling", "progressive", "exif", "icc", "mode", "bit_depth"]


def smooth(size, seed):
    """A smooth random RGB image (compresses like a photograph)."""
    w, h = size
    coarse = np.random.default_rng(seed).integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((w + 16, h + 16), Image.BICUBIC).crop((0, 0, w, h))


def save(path, image, **args):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **args)
    return str(path)


@pytest.fixture
def no_decoding(monkeypatch):
    """Any pixel decoding fails the test: file facts come from headers only."""
    def refuse(self, *args, **kwargs):
        raise AssertionError("pixels decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.mark.fast
@pytest.mark.parametrize("quality", [10, 30, 50, 75, 90, 95, 96, 100])
def test_the_jpeg_quality_of_standard_ijg_tables(tmp_path, no_decoding, quality):
    """Pillow and OpenCV write libjpeg's scaled standard tables: the estimate is within 2 (in fact exact)."""
    import cv2

    pil = save(tmp_path / "pil.jpg", smooth((64, 48), quality), quality=quality)
    ok, data = cv2.imencode(".jpg", np.asarray(smooth((64, 48), quality)), [cv2.IMWRITE_JPEG_QUALITY, quality])
    (tmp_path / "cv2.jpg").write_bytes(data.tobytes())
    for path in (pil, str(tmp_path / "cv2.jpg")):
        facts = file_facts.read_facts(path)
        assert facts["format"] == "JPEG" and abs(facts["jpeg_quality"] - quality) <= 2
        assert facts["jpeg_quality"] == quality


@pytest.mark.fast
def test_the_facts_of_known_files(tmp_path, no_decoding):
    image = smooth((300, 200), 0)
    icc = b"\0" * 128  # Pillow stores the bytes as they are
    exif = Image.Exif()
    exif[0x0110] = "camera"
    paths = {
        "plain": save(tmp_path / "a.jpg", image, quality=96),
        "progressive": save(tmp_path / "b.jpg", image, quality=80, progressive=True, subsampling=0, exif=exif.tobytes(),
                            icc_profile=icc),
        "subsampled_422": save(tmp_path / "c.jpg", image, quality=90, subsampling=1),
        "gray": save(tmp_path / "d.jpg", image.convert("L"), quality=70),
        "png": save(tmp_path / "e.png", image),
        "png16": save(tmp_path / "f.png", Image.fromarray(np.full((40, 30), 4000, np.uint16))),
        "rgba": save(tmp_path / "g.png", image.convert("RGBA")),
        "webp": save(tmp_path / "h.webp", image, quality=80),
    }
    facts = {name: file_facts.read_facts(path) for name, path in paths.items()}
    assert {n: f["format"] for n, f in facts.items()} == {"plain": "JPEG", "progressive": "JPEG", "subsampled_422": "JPEG",
                                                          "gray": "JPEG", "png": "PNG", "png16": "PNG", "rgba": "PNG",
                                                          "webp": "WEBP"}
    assert (facts["plain"]["width"], facts["plain"]["height"]) == (300, 200)
    assert facts["plain"]["jpeg_quality"] == 96 and facts["plain"]["chroma_subsampling"] == "4:2:0"
    assert not facts["plain"]["progressive"] and not facts["plain"]["exif"] and not facts["plain"]["icc"]
    assert facts["progressive"]["progressive"] and facts["progressive"]["exif"] and facts["progressive"]["icc"]
    assert facts["progressive"]["chroma_subsampling"] == "4:4:4" and facts["progressive"]["jpeg_quality"] == 80
    assert facts["subsampled_422"]["chroma_subsampling"] == "4:2:2"
    assert facts["gray"]["mode"] == "L" and facts["gray"]["chroma_subsampling"] == ""
    assert facts["png"]["jpeg_quality"] is None and facts["png"]["bit_depth"] == 8
    assert facts["png16"]["bit_depth"] == 16 and facts["png16"]["mode"].startswith("I")
    assert facts["rgba"]["mode"] == "RGBA"
    size = (tmp_path / "e.png").stat().st_size
    assert facts["png"]["file_bytes"] == size and facts["png"]["bytes_per_pixel"] == round(size / 60000, 4)
    assert facts["webp"]["width"] == 300


@pytest.mark.fast
def test_a_corrupt_header_is_a_recorded_skip(tmp_path):
    good = (tmp_path / "good.jpg")
    smooth((64, 64), 1).save(good, quality=90)
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[:12])
    (tmp_path / "text.png").write_bytes(b"not an image at all")
    (tmp_path / "empty.png").write_bytes(b"")
    table = file_facts.scan([str(tmp_path / n) for n in ("good.jpg", "cut.jpg", "text.png", "empty.png")], workers=1)
    assert list(table.reason) == ["", "truncated", "not_an_image", "empty_file"]  # as ingest names them
    assert table.format.iloc[0] == "JPEG" and table.jpeg_quality.iloc[0] == 90


def biased_and_clean_folders(root, n=12):
    """test/biased: reals JPEG q96 at several sizes, fakes PNG at 256 px; test/clean: both PNG at 224 px."""
    seed = iter(range(1000))
    for i in range(n):
        save(root / "biased/0_real" / f"{i}.jpg", smooth((224 + 32 * (i % 3),) * 2, next(seed)), quality=96)
        save(root / "biased/1_fake" / f"{i}.png", smooth((256, 256), next(seed)))
        save(root / "clean/0_real" / f"{i}.png", smooth((224, 224), next(seed)))
        save(root / "clean/1_fake" / f"{i}.png", smooth((224, 224), next(seed)))


@pytest.mark.fast
def test_the_audit_flags_a_biased_set_and_not_a_clean_one(tmp_path):
    biased_and_clean_folders(tmp_path)
    paths = sorted(str(p) for p in tmp_path.rglob("*.*"))
    facts = file_facts.scan(paths, workers=1)
    facts["split"], facts["test_set"] = "test", [p.split("/")[-3] for p in paths]
    facts["label"] = [int(p.split("/")[-2] == "1_fake") for p in paths]
    found = shortcuts.audit(facts, AUDITED, threshold=0.8, folds=5, seed=0)
    biased, clean = found["sets"]["test/biased"], found["sets"]["test/clean"]
    assert biased["shortcut_auc"] >= 0.95 and biased["flagged"]
    assert clean["shortcut_auc"] == 0.5 and not clean["flagged"]
    assert {f["fact"] for f in biased["separating_facts"]} >= {"format", "jpeg_quality"}
    assert biased["in_words"].startswith("reals: JPEG q96 at 224-288 px (short side); fakes: PNG at 256x256")
    assert clean["separating_facts"] == [] and found["headline"] == {"shortcut_auc": biased["shortcut_auc"], "flagged": 1}
    assert biased["transfer_auc"] is None  # no training split to fit on


@pytest.mark.fast
def test_the_fingerprint_depends_on_the_files_and_labels_only():
    shas = [f"{i:064x}" for i in range(5)]
    labels = [0, 0, 1, 1, 1]
    reference = fingerprints.fingerprint(shas, labels)
    order = [3, 0, 4, 1, 2]
    assert fingerprints.fingerprint([shas[i] for i in order], [labels[i] for i in order]) == reference
    assert fingerprints.fingerprint(shas[:4] + [f"{9:064x}"], labels) != reference
    assert fingerprints.fingerprint(shas, [0, 1, 1, 1, 1]) != reference


def datasets_json(*roots):
    result = subprocess.run([sys.executable, "-m", "fakedetect", "datasets", *map(str, roots), "--json", "--workers", "1"],
                            capture_output=True, text=True, env=stage_env(), cwd=PROJECT, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_fakedetect_datasets_fingerprints_folders_without_the_pipeline(tmp_path):
    """Same files under other names in another folder: the same fingerprint; one file changed: another."""
    biased_and_clean_folders(tmp_path / "a")
    shutil.copytree(tmp_path / "a/biased", tmp_path / "b/biased")
    for i, path in enumerate(sorted((tmp_path / "b/biased/1_fake").iterdir())):
        path.rename(path.with_name(f"renamed_{10 - i}.png"))
    first, copy = datasets_json(tmp_path / "a/biased"), datasets_json(tmp_path / "b/biased")
    entry = first["sets"]["test/biased"]
    assert (entry["real"], entry["fake"]) == (12, 12)
    assert copy["sets"]["test/biased"]["sha256"] == entry["sha256"]
    hashes = [(file_facts.read_facts(str(p))["sha256"], int(p.parent.name == "1_fake"))
              for p in (tmp_path / "a/biased").rglob("*.*")]
    assert entry["sha256"] == fingerprints.fingerprint(*zip(*hashes))
    assert entry["file_facts"]["real"]["jpeg_qualities"] == {"q96": 12}
    assert entry["file_facts"]["fake"]["in_words"] == "PNG at 256x256"
    save(tmp_path / "b/biased/1_fake/renamed_10.png", smooth((256, 256), 999))
    assert datasets_json(tmp_path / "b/biased")["sets"]["test/biased"]["sha256"] != entry["sha256"]


@pytest.mark.fast
def test_a_card_mismatch_names_the_set_and_both_counts(caplog):
    found = {"guided": {"real": 1000, "fake": 998}, "ldm_200": {"real": 1000, "fake": 1000},
             "progan": {"real": 5, "fake": 5}, "mine": {"real": 3, "fake": 3}}
    with caplog.at_level(logging.WARNING, logger="ingest"):
        checked = fingerprints.check_cards(found)
    assert set(checked) == {"guided", "ldm_200", "progan"}  # a set the card does not list is left out
    assert checked["guided"]["agrees"] is False and checked["ldm_200"]["agrees"] is True
    assert checked["progan"]["agrees"] is None  # the card does not know its counts: nothing checked
    assert checked["guided"]["expected"] == {"real": 1000, "fake": 1000}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "guided" in warnings[0] and "expected 1000 / 1000, found 1000 / 998" in warnings[0]


def test_ingest_warns_of_a_card_mismatch_and_the_audit_flags_the_demo_set(tmp_path):
    """The demo's format_biased set is flagged, its other sets are not; a folder named like a diffusion
    set of UnivFD with fewer files than the card's gets a warning naming it."""
    params = small_demo_params()
    result = run_stage("ingest", tmp_path, params, env=stage_env())
    assert result.returncode == 0, result.stderr
    audit = run_stage("audit", tmp_path, env=stage_env())
    assert audit.returncode == 0, audit.stderr
    report = json.loads((tmp_path / "reports/audit.json").read_text())
    flagged = {name for name, entry in report["sets"].items() if entry["flagged"]}
    assert flagged == {"test/format_biased"}
    for name in ("train", "val", "test/upsample_nearest", "test/transposed_conv", "test/noise_denoise"):
        assert report["sets"][name]["shortcut_auc"] == 0.5
    assert "FLAGGED" in audit.stderr and "test/format_biased" in audit.stderr
    assert json.loads((tmp_path / "metrics/audit.json").read_text()) == {"flagged": 1, "shortcut_auc": 1.0}
    ingest = json.loads((tmp_path / "reports/ingest.json").read_text())
    assert ingest["file_facts"]["test/format_biased"]["fake"]["in_words"] == "PNG at 256x256"
    assert ingest["fingerprints"]["test/format_biased"]["real"] == 6
    plot = pd.read_csv(tmp_path / "plots/audit.csv")
    assert set(plot.auc) == {"shortcut", "transfer"}

    data = tmp_path / "diffusion"
    for folder in ("laion/0_real", "guided/1_fake", "imagenet/0_real"):
        for i in range(2):
            save(data / folder / f"{i}.png", smooth((64, 64), i))
    params.update(images=["datasets"])
    params["ingest"]["datasets"] = [{"layout": "univfd_diffusion", "root": str(data)}]
    result = run_stage("ingest", tmp_path, params, env=stage_env())
    assert result.returncode == 0, result.stderr
    assert "test set guided differs from the card of UnivFD diffusion_datasets" in result.stderr
    assert "expected 1000 / 1000, found 2 / 2" in result.stderr
    ingest = json.loads((tmp_path / "reports/ingest.json").read_text())
    assert ingest["benchmark_cards"]["guided"]["agrees"] is False

"""The bad-input corpus: each file is converted to RGB or skipped with its reason; nothing crashes."""
import io
import json
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fakedetect.data import images, manifests
from fakedetect.data.images import BadImage, Limits
from helpers import run_stage, write_image

ROOT_CAN_READ_ANYTHING = os.geteuid() == 0


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid tiny PNG whose header claims width x height: a decompression bomb's header."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytearray(data[12:29])  # chunk type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def build_corpus(folder):
    """Write every kind of bad or unusual file; return {file name: (status, reason, mode)}."""
    real = folder / "0_real"
    real.mkdir(parents=True)
    (folder / "1_fake").mkdir()  # an empty class folder
    expected = {}

    write_image(real / "rgb.png")
    expected["rgb.png"] = ("ok", "", "RGB")
    jpeg = write_image(real / "truncated.jpg", size=(256, 256)).read_bytes()
    (real / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # cut inside the image data
    expected["truncated.jpg"] = ("skipped", "truncated", "")
    (real / "header_only.jpg").write_bytes(jpeg[:300])  # cut inside the header
    expected["header_only.jpg"] = ("skipped", "truncated", "")
    (real / "zero.png").write_bytes(b"")
    expected["zero.png"] = ("skipped", "empty_file", "")
    (real / "text.png").write_text("this is not a picture\n")
    expected["text.png"] = ("skipped", "not_an_image", "")
    (real / "folder.jpg").mkdir()
    expected["folder.jpg"] = ("skipped", "not_a_file", "")
    os.symlink("loop.jpg", real / "loop.jpg")
    expected["loop.jpg"] = ("skipped", "symlink_loop", "")
    os.symlink("nowhere.png", real / "dangling.png")
    expected["dangling.png"] = ("skipped", "missing", "")
    locked = write_image(real / "locked.png")
    locked.chmod(0)
    expected["locked.png"] = ("ok", "", "RGB") if ROOT_CAN_READ_ANYTHING else ("skipped", "permission_denied", "")
    write_image(real / "gray.png", mode="L")
    expected["gray.png"] = ("ok", "", "L")
    write_image(real / "palette.png", mode="P")
    expected["palette.png"] = ("ok", "", "P")
    write_image(real / "rgba.png", mode="RGBA")
    expected["rgba.png"] = ("ok", "", "RGBA")
    write_image(real / "cmyk.jpg", mode="CMYK")
    expected["cmyk.jpg"] = ("ok", "", "CMYK")
    Image.fromarray(np.full((40, 48), 65535, dtype=np.uint16)).save(real / "sixteen.png")
    expected["sixteen.png"] = ("ok", "", Image.open(real / "sixteen.png").mode)
    write_image(real / "one.png", size=(1, 1))
    expected["one.png"] = ("skipped", "too_small", "")
    (real / "bomb.png").write_bytes(png_claiming_size(20000, 20000))
    expected["bomb.png"] = ("skipped", "decompression_bomb", "")
    (real / "big.png").write_bytes(png_claiming_size(10000, 9000))  # over our limit, under Pillow's error
    expected["big.png"] = ("skipped", "decompression_bomb", "")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    write_image(real / "rotated.jpg", size=(64, 40), exif=exif)
    expected["rotated.jpg"] = ("ok", "", "RGB")
    with open(os.fsencode(real) + b"/caf\xe9.png", "wb") as f:
        f.write((real / "rgb.png").read_bytes())
    expected["caf\\xe9.png"] = ("skipped", "non_utf8_name", "")
    return expected


def test_bad_input_corpus_through_ingest_and_preprocess(tmp_path):
    expected = build_corpus(tmp_path / "corpus")
    params = {"images": ["datasets"], "ingest": {"workers": 2,
                         "datasets": [{"layout": "generic", "root": "corpus"}]}}
    result = run_stage("ingest", tmp_path, params)
    assert result.returncode == 0, result.stderr
    manifest = manifests.read_manifest(tmp_path / "data/manifest.csv")
    got = {r.path.rsplit("/", 1)[-1]: (r.status, r.reason, r.mode) for r in manifest.itertuples()}
    assert got == expected
    rotated = manifest[manifest.path.str.endswith("rotated.jpg")].iloc[0]
    assert (rotated.width, rotated.height) == (40, 64)  # EXIF orientation applied

    metrics = json.loads((tmp_path / "reports/ingest.json").read_text())
    reasons = [reason for status, reason, _ in expected.values() if status == "skipped"]
    assert metrics["skipped_files_by_reason"] == {r: reasons.count(r) for r in sorted(set(reasons))}
    assert metrics["empty_folders"] == ["corpus/1_fake"]
    assert metrics["converted_to_rgb_from"]["CMYK"] == 1

    result = run_stage("preprocess", tmp_path)
    assert result.returncode == 0, result.stderr
    rows = manifests.read_manifest(tmp_path / "data/preprocessed.csv")
    assert set(rows.status) == {"ok"} and len(rows) == sum(s == "ok" for s, _, _ in expected.values())
    for row in rows.itertuples():
        out = np.asarray(Image.open(tmp_path / row.image))
        assert out.shape == (224, 224, 3), row.path
    sixteen = rows[rows.path.str.endswith("sixteen.png")].iloc[0]
    crop = np.asarray(Image.open(tmp_path / sixteen.image))
    assert crop[112, 112].tolist() == [255, 255, 255]  # 16-bit white scaled, not clipped to garbage


@pytest.mark.fast
def test_permission_denied_is_a_recorded_skip(tmp_path, monkeypatch):
    path = write_image(tmp_path / "a.png")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(images, "open", refuse, raising=False)
    with pytest.raises(BadImage) as caught:
        images.load(str(path))
    assert caught.value.reason == "permission_denied"


@pytest.mark.parametrize("mode, expected_rgb", [
    ("L", lambda a: np.repeat(np.asarray(a.convert("L"))[:, :, None], 3, axis=2)),
    ("RGBA", None), ("P", None), ("CMYK", None),
])
@pytest.mark.fast
def test_conversions_to_rgb(tmp_path, mode, expected_rgb):
    path = write_image(tmp_path / f"x.{'jpg' if mode == 'CMYK' else 'png'}", mode=mode)
    decoded = images.load(str(path))
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.shape == (40, 48, 3) and decoded.mode == mode
    if expected_rgb is not None:
        np.testing.assert_array_equal(decoded.rgb, expected_rgb(Image.open(path)))


@pytest.mark.fast
def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((40, 48, 4), dtype=np.uint8)
    rgba[:, :24] = (10, 20, 30, 255)
    Image.fromarray(rgba).save(tmp_path / "t.png")
    rgb = images.load(str(tmp_path / "t.png")).rgb
    assert rgb[0, 0].tolist() == [10, 20, 30] and rgb[0, 47].tolist() == [255, 255, 255]


@pytest.mark.fast
def test_limits_keep_only_rgb_and_file_size(tmp_path):
    gray = write_image(tmp_path / "g.png", mode="L")
    with pytest.raises(BadImage, match="not_rgb"):
        images.load(str(gray), Limits(keep_only_rgb=True))
    with pytest.raises(BadImage, match="file_too_large"):
        images.load(str(gray), Limits(max_bytes=100))

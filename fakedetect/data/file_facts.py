"""What an image file says about itself before a single pixel is decoded: its container format,
size, bytes per pixel, JPEG quality and chroma subsampling, progressive encoding, EXIF and ICC
blocks, mode and bit depth (docs/shortcuts.md "File facts").

Pillow's `Image.open` reads only the header (for a JPEG: every marker up to the start of the
scan, the quantisation tables included); nothing here calls `load`. The JPEG quality is the IJG
(libjpeg) quality whose scaled standard luminance table is closest to the file's: libjpeg, Pillow
and OpenCV all scale that table by 5000/q (q < 50) or 200 - 2q (q >= 50), then divide by 100 and
clip to 1..255, so a file they wrote gives its quality back exactly; a file with tables of its own
(a camera's, Photoshop's) gets the nearest IJG quality, an estimate.
"""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from PIL import Image, JpegImagePlugin
from tqdm import tqdm

from fakedetect.data import fingerprints, images
from fakedetect.data.images import BadImage

# The IJG standard luminance quantisation table (ITU-T T.81 Annex K, table K.1), in natural order,
# as Pillow's `quantization` gives it.
IJG_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.int64)


def ijg_table(quality: int) -> np.ndarray:
    """The luminance table libjpeg writes at this quality (1..100)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((IJG_LUMINANCE * scale + 50) // 100, 1, 255)


IJG_TABLES = np.stack([ijg_table(q) for q in range(1, 101)])  # row q - 1


def estimate_quality(luminance) -> int:
    """The IJG quality whose luminance table is closest (sum of absolute differences) to `luminance`;
    on a tie (e.g. tables of all ones at q 98..100) the highest such quality."""
    distance = np.abs(IJG_TABLES - np.asarray(luminance, dtype=np.int64)).sum(axis=1)
    return int(100 - np.argmin(distance[::-1]))


SUBSAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}
BIT_DEPTH = {"1": 1, "I": 32, "F": 32, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# One row per file in data/file_facts.csv (fakedetect.artifacts.FILE_FACTS), beside the manifest.
COLUMNS = ["path", "sha256", "format", "width", "height", "file_bytes", "bytes_per_pixel", "mode", "bit_depth",
           "jpeg_quality", "chroma_subsampling", "progressive", "exif", "icc", "reason"]


def _bit_depth(im: Image.Image, data: bytes) -> int:
    """Bits per channel: a PNG's from its IHDR chunk (a 16-bit RGB PNG opens as 8-bit RGB), else from the mode."""
    if data[:8] == PNG_SIGNATURE and len(data) > 24:
        return data[24]
    return BIT_DEPTH.get(im.mode, 8)


def header_facts(data: bytes) -> dict:
    """The facts of an image file's bytes, from its header only; BadImage when the header cannot be read."""
    with images.open_header(data) as im:
        width, height = im.size
        jpeg = im.format == "JPEG"
        quantization = getattr(im, "quantization", None) or {}
        return {
            "format": im.format or "",
            "width": width, "height": height,
            "file_bytes": len(data),
            "bytes_per_pixel": round(len(data) / max(width * height, 1), 4),
            "mode": im.mode, "bit_depth": _bit_depth(im, data),
            "jpeg_quality": estimate_quality(quantization[0]) if jpeg and 0 in quantization else None,
            "chroma_subsampling": SUBSAMPLING.get(JpegImagePlugin.get_sampling(im), "other")
            if jpeg and im.layers == 3 else "",
            "progressive": bool(im.info.get("progressive") or im.info.get("progression")),
            "exif": bool(im.info.get("exif")),
            "icc": bool(im.info.get("icc_profile")),
        }


def read_facts(path: str, max_bytes: int | None = None) -> dict:
    """One file's row of COLUMNS: its SHA-256 and header facts, or the reason they cannot be had
    (the file is read whole to be hashed, but never decoded)."""
    row = {"path": path, "sha256": "", "reason": ""}
    try:
        data = images.read_file(path, max_bytes)
        row["sha256"] = images.sha256_of(data)
        row |= header_facts(data)
    except BadImage as exc:
        row["reason"] = exc.reason
    return row


def scan(paths: list[str], workers: int, max_bytes: int | None = None) -> pd.DataFrame:
    """The facts of every path (in parallel), one row each in the order given."""
    with ProcessPoolExecutor(workers) as pool:
        rows = list(tqdm(pool.map(read_facts, paths, [max_bytes] * len(paths), chunksize=64), total=len(paths),
                         desc="file facts", unit="file", mininterval=2))
    return as_table(rows)


def as_table(rows: list[dict]) -> pd.DataFrame:
    """Facts rows as a table of COLUMNS; whole numbers stay whole where a file lacks one (a PNG's quality)."""
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("width", "height", "file_bytes", "bit_depth", "jpeg_quality"):
        frame[column] = frame[column].astype("Int64")
    return frame


# ------------------------------------------------------------------- summaries per set and class


def _counts(values, top: int) -> dict[str, int]:
    """The `top` most common values with their counts, the rest as `other`."""
    common = Counter(values).most_common()
    kept = {str(k): int(n) for k, n in common[:top]}
    rest = sum(n for _, n in common[top:])
    return kept | ({"other": int(rest)} if rest else {})


def summarize_class(facts) -> dict:
    """Formats, sizes and JPEG qualities of one class of one set (a DataFrame of facts rows)."""
    jpeg = facts[facts.format == "JPEG"]
    return {"formats": _counts(facts.format, 4),
            "sizes": _counts((f"{w}x{h}" for w, h in zip(facts.width, facts.height)), 5),
            "jpeg_qualities": _counts((f"q{int(q)}" for q in jpeg.jpeg_quality), 5)}


def _span(values, unit: str = "") -> str:
    low, high = int(min(values)), int(max(values))
    return f"{low}{unit}" if low == high else f"{low}-{high}{unit}"


def describe_class(facts) -> str:
    """One class's files in words: 'JPEG q95-97 at 224-288 px', 'PNG at 256x256', '60% JPEG q96, 40% PNG at ...'."""
    if len(facts) == 0:
        return "no files"
    parts = []
    for fmt, n in Counter(facts.format).most_common(3):
        share = "" if n == len(facts) else f"{100 * n / len(facts):.0f}% "
        quality = f" q{_span(facts[facts.format == fmt].jpeg_quality)}" if fmt == "JPEG" else ""
        parts.append(f"{share}{fmt or 'unknown'}{quality}")
    sizes = set(zip(facts.width, facts.height))
    size = (f"{next(iter(sizes))[0]}x{next(iter(sizes))[1]}" if len(sizes) == 1
            else f"{_span(np.minimum(facts.width, facts.height), ' px')} (short side)")
    return f"{', '.join(parts)} at {size}"


def summarize_sets(rows: pd.DataFrame, facts: pd.DataFrame) -> dict:
    """Per split and test set of the manifest `rows` (joined to their `facts` by path), per class:
    formats, sizes and JPEG qualities, and the files in words."""
    joined = rows[["path", "split", "test_set", "label"]].merge(facts.drop(columns=["sha256"]), on="path", how="left")
    out = {}
    for (split, test_set), group in joined.groupby(["split", "test_set"], sort=True):
        out[fingerprints.set_name(split, test_set)] = {
            name: {**summarize_class(part), "in_words": describe_class(part)}
            for name, part in (("real", group[group.label == 0]), ("fake", group[group.label == 1])) if len(part)}
    return out


def read_table(path) -> pd.DataFrame:
    """Read data/file_facts.csv with its column types (a missing number, e.g. a PNG's JPEG quality, is NaN)."""
    numbers = {"width": "Int64", "height": "Int64", "file_bytes": "Int64", "bytes_per_pixel": float,
               "bit_depth": "Int64", "jpeg_quality": "Int64"}
    frame = pd.read_csv(path, keep_default_na=False, na_values={c: [""] for c in numbers},
                        dtype={c: numbers.get(c, str) for c in COLUMNS})
    for column in ("progressive", "exif", "icc"):
        frame[column] = frame[column] == "True"
    return frame

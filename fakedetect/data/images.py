"""Safe image decoding: every failure becomes a named reason, every image becomes RGB uint8.

Bad input is never fatal and never silent (docs/pipeline.md "ingest"): the ingest stage records the
reason of each skipped file in the manifest. Decompression bombs are refused before
their pixels are decoded, and Pillow's own pixel limit stays on.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

# Every reason a file can be skipped for; the manifest's `reason` column holds one of these.
REASONS = {
    "not_a_file": "a directory or special file with an image extension",
    "symlink_loop": "a symbolic link that points back to itself",
    "missing": "vanished, or a link whose target does not exist",
    "permission_denied": "the file cannot be read by this user",
    "non_utf8_name": "the file name is not valid UTF-8 (rename it)",
    "empty_file": "zero bytes",
    "file_too_large": "larger than ingest.max_file_mb",
    "not_an_image": "the bytes are not an image format Pillow knows",
    "decompression_bomb": "more pixels than ingest.max_pixels",
    "truncated": "the image data ends early",
    "corrupt": "the image data cannot be decoded",
    "too_small": "a side shorter than ingest.min_side",
    "not_rgb": "not an RGB image and ingest.keep_only_rgb is true",
    "changed_since_ingest": "the file's content no longer matches the manifest's sha256",
}


class BadImage(Exception):
    """A file that cannot be used, with its reason (a key of REASONS) and detail."""

    def __init__(self, reason: str, detail: str = ""):
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """What ingest refuses. None disables a check (Pillow's own bomb limit always applies)."""

    max_pixels: int | None = None
    max_bytes: int | None = None
    min_side: int = 1
    keep_only_rgb: bool = False


@dataclass(frozen=True)
class Decoded:
    rgb: np.ndarray  # H x W x 3 uint8, EXIF orientation applied
    mode: str  # Pillow's mode of the file before conversion (RGB, L, P, RGBA, CMYK, I;16, ...)
    sha256: str  # of the file's bytes


def read_file(path: str, max_bytes: int | None = None) -> bytes:
    """The file's bytes, or BadImage naming why they cannot be had."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise BadImage("non_utf8_name", repr(path)) from None
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadImage("symlink_loop") from None
        if exc.errno == errno.EACCES:
            raise BadImage("permission_denied") from None
        raise BadImage("missing", exc.strerror or "") from None
    if not os.path.isfile(path):
        raise BadImage("not_a_file")
    if st.st_size == 0:
        raise BadImage("empty_file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise BadImage("file_too_large", f"{st.st_size} bytes")
    try:
        with open(path, "rb") as f:
            return f.read()
    except PermissionError:
        raise BadImage("permission_denied") from None
    except OSError as exc:
        raise BadImage("missing", exc.strerror or "") from None


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to RGB uint8: 16-bit scaled (not clipped), transparency over white."""
    if im.mode == "RGB":
        return np.asarray(im)
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(im, dtype=np.float64)
        scale = 257.0 if values.max(initial=0) > 255 else 1.0  # 16-bit range -> 8-bit range
        gray = np.clip(np.rint(values / scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def _undecodable(exc: Exception) -> BadImage:
    reason = "truncated" if "truncated" in str(exc).lower() else "corrupt"
    return BadImage(reason, f"{type(exc).__name__}: {exc}")


def open_header(data: bytes) -> Image.Image:
    """Pillow's image of these bytes with only the header read (no pixel decoded), or BadImage."""
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise BadImage("not_an_image") from None
    except Image.DecompressionBombError as exc:
        raise BadImage("decompression_bomb", str(exc)) from None
    except Exception as exc:  # Pillow raises many types for malformed headers
        raise _undecodable(exc) from None


def decode(data: bytes, limits: Limits = Limits()) -> tuple[np.ndarray, str]:
    """Decode image bytes fully into RGB uint8; return (pixels, original mode) or raise BadImage."""
    with open_header(data) as im:
        if limits.max_pixels is not None and im.width * im.height > limits.max_pixels:
            raise BadImage("decompression_bomb", f"{im.width}x{im.height}")
        mode = im.mode
        if limits.keep_only_rgb and mode != "RGB":
            raise BadImage("not_rgb", mode)
        try:
            im.load()
            im = ImageOps.exif_transpose(im)
            rgb = _to_rgb(im)
        except Exception as exc:
            raise _undecodable(exc) from None
    if min(rgb.shape[:2]) < limits.min_side:
        raise BadImage("too_small", f"{rgb.shape[1]}x{rgb.shape[0]}")
    return np.ascontiguousarray(rgb), mode


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load(path: str, limits: Limits = Limits()) -> Decoded:
    """Read, hash and decode one file in a single pass over its bytes."""
    data = read_file(path, limits.max_bytes)
    rgb, mode = decode(data, limits)
    return Decoded(rgb=rgb, mode=mode, sha256=sha256_of(data))

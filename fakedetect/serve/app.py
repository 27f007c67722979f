"""The HTTP side of `fakedetect serve`: a static page and a small JSON API (Starlette on uvicorn).

Uploads are written, under generated names, to a private temporary folder that is removed after
the request; no request names a file on the server's disk (thumbnails go by integer row index).
Status codes: docs/serve.md "HTTP API".
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fakedetect.data.images import IMAGE_EXTENSIONS, REASONS

STATIC = Path(__file__).parent / "static"
MAX_FILES = 256  # per request
# The HTTP status of each reason an image cannot be scored (docs/serve.md "HTTP API").
STATUS = {"empty_file": 400, "truncated": 400, "corrupt": 400, "file_too_large": 413, "not_an_image": 415,
          "decompression_bomb": 422, "too_small": 422, "not_rgb": 422}
MESSAGES = {**REASONS, "empty_file": "the upload is empty (zero bytes)",
            "file_too_large": "the file is larger than the server's upload cap",
            "not_an_image": "not an image (the bytes are no format Pillow knows)",
            "decompression_bomb": "refused as a decompression bomb: more pixels than the run's ingest.max_pixels"}


def _error(status: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"error": reason, "message": message}, status_code=status)


def _explain(row: dict) -> dict:
    """An unscored image's result with the HTTP status and a sentence for its reason."""
    if row["status"] == "ok":
        return row
    return {**row, "http_status": STATUS.get(row["reason"], 400), "message": MESSAGES.get(row["reason"], row["reason"])}


def _refused(name: str, reason: str, detail: str = "") -> dict:
    """A result for a file refused before decoding (empty, over the cap): predict's fields, unscored."""
    row = {"path": name, "status": "unreadable", "reason": reason, "p_fake": None, "fake": None, "threshold": None,
           "fake_at_0_5": None, "family": None, "p_family": None, "detectors": [], "neighbours": []}
    row = _explain(row)
    if detail:
        row["message"] += f" ({detail})"
    return row


def create_app(service, max_upload_bytes: int) -> Starlette:
    """The app over a loaded `Service`; files over `max_upload_bytes` are refused unread (413)."""

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def info(request: Request) -> Response:
        return JSONResponse({**service.info(), "max_upload_bytes": max_upload_bytes})

    async def thumbnail(request: Request) -> Response:
        data = await run_in_threadpool(service.evidence.thumbnail, request.path_params["row"])
        if data is None:
            return _error(404, "no_such_row", "no training image of the bank has this row index")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    async def score(request: Request) -> Response:
        heatmap = request.query_params.get("heatmap", "1").lower() not in ("0", "false", "no", "off")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_upload_bytes * MAX_FILES + 2**20:
            return _error(413, "file_too_large", f"the request is larger than {MAX_FILES} files of the upload cap")
        try:
            form = await request.form(max_files=MAX_FILES)
        except MultiPartException as exc:
            return _error(400, "bad_upload", f"the upload cannot be read as multipart/form-data: {exc}")
        except (AssertionError, ValueError) as exc:
            return _error(400, "bad_upload", f"the request is no multipart/form-data upload: {exc}")
        uploads = [f for f in form.getlist("files") if hasattr(f, "read")]
        if not uploads:
            await form.close()
            return _error(400, "no_file", "no file in the upload: send one or more files in the field `files`")
        folder = tempfile.mkdtemp(prefix="fakedetect-serve-")
        try:
            results, paths, names, at = [], [], [], []
            for i, upload in enumerate(uploads):
                name = os.path.basename(upload.filename or "") or f"upload-{i + 1}"
                size = upload.size if upload.size is not None else len(await upload.read())
                if size == 0:
                    results.append(_refused(name, "empty_file"))
                    continue
                if size > max_upload_bytes:
                    results.append(_refused(name, "file_too_large", f"{size} bytes, the cap is {max_upload_bytes}"))
                    continue
                await upload.seek(0)
                suffix = os.path.splitext(name)[1].lower()
                path = os.path.join(folder, f"{i:05d}{suffix if suffix in IMAGE_EXTENSIONS else '.upload'}")
                with open(path, "wb") as out:
                    while chunk := await upload.read(2**20):
                        out.write(chunk)
                results.append(None)
                paths.append(path)
                names.append(name)
                at.append(i)
            timings = {}
            if paths:
                scored, timings = await run_in_threadpool(service.score, paths, names, heatmap)
                for i, row in zip(at, scored):
                    results[i] = _explain(row)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            await form.close()
        ok = any(r["status"] == "ok" for r in results)
        status = 200 if ok else results[0]["http_status"]
        return JSONResponse({"images": results, "timings": {k: round(v, 4) for k, v in timings.items()}},
                            status_code=status)

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, "not_found" if exc.status_code == 404 else "http_error", str(exc.detail))

    routes = [Route("/", page), Route("/api/info", info), Route("/api/score", score, methods=["POST"]),
              Route("/api/thumbnail/{row:int}", thumbnail), Mount("/static", StaticFiles(directory=STATIC), name="static")]
    return Starlette(routes=routes, exception_handlers={HTTPException: not_found})

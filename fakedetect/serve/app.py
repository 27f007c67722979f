"""The HTTP side of `fakedetect serve`: a static page and a small JSON API (Starlette on uvicorn).

Uploads are written, under generated names, to a private temporary folder that is removed after
the request; no request names a file on the server's disk (thumbnails go by integer row index).
Status codes: docs/serve.md "HTTP API".
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fakedetect.data.images import REASONS
from fakedetect.serve import uploads

STATIC = Path(__file__).parent / "static"
MAX_FILES = 256  # per request
# The HTTP status of each reason an image cannot be scored (docs/serve.md "HTTP API").
STATUS = {"empty_file": 400, "truncated": 400, "corrupt": 400, "file_too_large": 413, "not_an_image": 415,
          "decompression_bomb": 422, "too_small": 422, "not_rgb": 422}
MESSAGES = {**REASONS, "empty_file": "the upload is empty (zero bytes)",
            "not_an_image": "not an image (the bytes are no format Pillow knows)",
            "decompression_bomb": "refused as a decompression bomb: more pixels than the run's ingest.max_pixels"}


def _error(status: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"error": reason, "message": message}, status_code=status)


def _explain(row: dict) -> dict:
    """An unscored image's result with the HTTP status and a sentence for its reason."""
    if row["status"] == "ok":
        return row
    return {**row, "http_status": STATUS.get(row["reason"], 400), "message": MESSAGES.get(row["reason"], row["reason"])}


def _empty(name: str) -> dict:
    """The result of a zero-byte file, refused before decoding: predict's fields, unscored."""
    return _explain({"path": name, "status": "unreadable", "reason": "empty_file", "p_fake": None, "fake": None,
                     "threshold": None, "fake_at_0_5": None, "family": None, "p_family": None, "detectors": [],
                     "neighbours": []})


def _refusal(refused: uploads.Refused) -> JSONResponse:
    """An upload refused while it streamed in. The connection is closed after the answer, so that
    the server reads none of the rest of the body (a kept-alive connection would read it to the end)."""
    response = _error(refused.status, refused.reason, refused.message)
    response.headers["Connection"] = "close"
    return response


def create_app(service, max_upload_bytes: int) -> Starlette:
    """The app over a loaded `Service`; a file over `max_upload_bytes` ends its request with 413
    as soon as it passes the cap (fakedetect.serve.uploads)."""
    max_request_bytes = max_upload_bytes * MAX_FILES + 2**20  # the files and 1 MiB for the parts' headers

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
        if length is not None and length.isdigit() and int(length) > max_request_bytes:
            return _refusal(uploads.Refused(413, "request_too_large", f"the request is larger than "
                                            f"{max_request_bytes} bytes ({MAX_FILES} files of the upload cap)"))
        folder = tempfile.mkdtemp(prefix="fakedetect-serve-")
        try:
            try:
                received = await uploads.receive(request, folder, max_upload_bytes, MAX_FILES, max_request_bytes)
            except uploads.Refused as refused:
                return _refusal(refused)
            if not received:
                return _error(400, "no_file", "no file in the upload: send one or more files in the field `files`")
            results = [_empty(u.name) if u.size == 0 else None for u in received]
            scored = [u for u in received if u.size > 0]
            timings = {}
            if scored:
                rows, timings = await run_in_threadpool(service.score, [u.path for u in scored],
                                                        [u.name for u in scored], heatmap)
                rows = iter(rows)
                results = [r if r is not None else _explain(next(rows)) for r in results]
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        ok = any(r["status"] == "ok" for r in results)
        status = 200 if ok else results[0]["http_status"]
        return JSONResponse({"images": results, "timings": {k: round(v, 4) for k, v in timings.items()}},
                            status_code=status)

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, "not_found" if exc.status_code == 404 else "http_error", str(exc.detail))

    routes = [Route("/", page), Route("/api/info", info), Route("/api/score", score, methods=["POST"]),
              Route("/api/thumbnail/{row:int}", thumbnail), Mount("/static", StaticFiles(directory=STATIC), name="static")]
    return Starlette(routes=routes, exception_handlers={HTTPException: not_found})

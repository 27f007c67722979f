"""Reading a multipart/form-data upload as it streams in, each file straight into its own file.

Starlette's `request.form()` spools every part whole before the handler sees a size; here each
chunk of the body is parsed (python-multipart's streaming parser) and checked as it arrives, with
or without a Content-Length (chunked transfer): a file that passes the per-file cap, or a request
that passes its own bound, stops the reading at that chunk with 413, so nothing beyond it is read
from the connection or written to disk. Files are written under generated names (their position
in the upload) in a folder the caller owns; no part of a request names a path on the server.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from fakedetect.data.images import IMAGE_EXTENSIONS

FIELD = "files"  # the form field that carries the files


class Refused(Exception):
    """The upload cannot be read on: its HTTP status, error name and message."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


@dataclass
class Upload:
    name: str  # the client's file name (its base name), or upload-N
    path: str  # where its bytes are
    size: int


class _Parts:
    """python-multipart's callbacks: each part of field `files` with a file name goes, chunk by
    chunk, into folder/NNNNN<ext>; other parts are counted and dropped. A chunk is at most what
    one receive() gave (64 KiB under uvicorn), so writing it on the event loop is short."""

    def __init__(self, folder: str, max_file_bytes: int, max_files: int):
        self.folder, self.max_file_bytes, self.max_files = folder, max_file_bytes, max_files
        self.uploads: list[Upload] = []
        self.ended = False
        self._header, self._value, self._disposition = b"", b"", b""
        self._out = None
        self._current: Upload | None = None

    def callbacks(self) -> dict:
        return {"on_part_begin": self.on_part_begin, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end, "on_end": self.on_end}

    def on_part_begin(self) -> None:
        self._disposition = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        if self._header.strip().lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name") != FIELD.encode() or b"filename" not in options:
            return
        if len(self.uploads) == self.max_files:
            raise Refused(413, "too_many_files", f"more than {self.max_files} files in one request")
        position = len(self.uploads)
        name = os.path.basename(options[b"filename"].decode("utf-8", "replace").replace("\\", "/"))
        name = name or f"upload-{position + 1}"
        suffix = os.path.splitext(name)[1].lower()
        path = os.path.join(self.folder, f"{position:05d}{suffix if suffix in IMAGE_EXTENSIONS else '.upload'}")
        self._current = Upload(name, path, 0)
        self.uploads.append(self._current)
        self._out = open(path, "wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current is None:
            return
        self._current.size += end - start
        if self._current.size > self.max_file_bytes:
            raise Refused(413, "file_too_large", f"{self._current.name} is larger than the server's upload cap "
                          f"({self.max_file_bytes} bytes): the upload stopped there, nothing of it was scored")
        self._out.write(data[start:end])

    def on_part_end(self) -> None:
        self.close()
        self._current = None

    def on_end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


async def receive(request: Request, folder: str, max_file_bytes: int, max_files: int,
                  max_request_bytes: int) -> list[Upload]:
    """The files of field `files`, in upload order, written into `folder`; raises `Refused`
    (400 for a request that is no complete multipart upload, 413 past a bound) as soon as the
    body shows it, before reading on."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise Refused(400, "bad_upload", "the request is no multipart/form-data upload (with a boundary)")
    parts = _Parts(folder, max_file_bytes, max_files)
    received = 0
    try:
        parser = MultipartParser(options[b"boundary"], parts.callbacks())
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_request_bytes:
                raise Refused(413, "request_too_large", f"the request is larger than {max_request_bytes} bytes "
                              f"({max_files} files of the upload cap)")
            parser.write(chunk)
    except FormParserError as exc:
        raise Refused(400, "bad_upload", f"the upload cannot be read as multipart/form-data: {exc}") from None
    except ClientDisconnect:
        raise Refused(400, "bad_upload", "the client closed the connection before the upload's end") from None
    finally:
        parts.close()
    if not parts.ended:
        raise Refused(400, "bad_upload", "the upload ends before its closing boundary")
    return parts.uploads

"""Starting `fakedetect serve` (or its app over a stand-in run, tests/stub_service.py) as a
subprocess on a free port of 127.0.0.1 (always stopped), and small multipart clients: what
tests/test_serve*.py and bench/serve.py share."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from helpers import PROJECT, free_port


def serve_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(PROJECT), "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


@contextlib.contextmanager
def _started(command: list[str], port: int, env: dict, timeout: float):
    """Yield (base URL, process) of a server that `command` starts on `port`; stop it on the way out."""
    log = tempfile.TemporaryFile("w+")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}:\n{log.read()}")
            try:
                urllib.request.urlopen(url + "api/info", timeout=5).read()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{' '.join(command)} did not answer in time") from None
                time.sleep(0.25)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextlib.contextmanager
def running_server(project: Path, *args: str, timeout: float = 300):
    """Yield the base URL of `fakedetect serve` on `project`; stop it on the way out."""
    port = free_port()
    command = [sys.executable, "-m", "fakedetect", "serve", "--project", str(project), "--port", str(port), *args]
    with _started(command, port, serve_env(), timeout) as (url, _):
        yield url


@contextlib.contextmanager
def running_stub(max_upload_bytes: int, tmpdir: Path, timeout: float = 60):
    """Yield (base URL, process) of serve's app over tests/stub_service.py (no trained run), its
    temporary files in `tmpdir`."""
    port = free_port()
    command = [sys.executable, str(Path(__file__).parent / "stub_service.py"), str(port), str(max_upload_bytes)]
    with _started(command, port, {**serve_env(), "TMPDIR": str(tmpdir)}, timeout) as started:
        yield started


def multipart(files: list[tuple[str, Iterable[bytes]]], boundary: str, field: str = "files") -> Iterator[bytes]:
    """The multipart/form-data body of files (name, their bytes in pieces) in `field`, piece by piece."""
    for name, pieces in files:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n").encode()
        yield from pieces
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def post_files(url: str, files: list[tuple[str, bytes]], query: str = "") -> tuple[int, dict]:
    """POST files (name, bytes) as multipart field `files` to url/api/score; (status, JSON)."""
    boundary = uuid.uuid4().hex
    body = b"".join(multipart([(name, [data]) for name, data in files], boundary))
    request = urllib.request.Request(url + "api/score" + query, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def stream_files(url: str, files: list[tuple[str, int, Iterable[bytes]]], chunked: bool,
                 field: str = "files") -> tuple[int, dict, int]:
    """POST files (name, size, their bytes in pieces) in `field` to url/api/score as a client that streams:
    with a Content-Length, or chunked (no length), piece by piece, and stops sending as soon as
    the server answers or closes. (status, JSON, how many bytes of the body it had handed to its
    socket by then). Its send buffer is kept small, so that little more than what the server
    took in has left the client."""
    boundary = uuid.uuid4().hex
    address = urllib.parse.urlsplit(url)
    length = len(b"".join(multipart([(name, []) for name, _, _ in files], boundary, field))) + sum(s for _, s, _ in files)
    head = (f"POST /api/score HTTP/1.1\r\nHost: {address.netloc}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            + ("Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {length}\r\n") + "\r\n")
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2**16)
        sock.settimeout(120)
        sock.connect((address.hostname, address.port))
        sock.sendall(head.encode())
        try:
            for piece in multipart([(name, pieces) for name, _, pieces in files], boundary, field):
                if select.select([sock], [], [], 0)[0]:  # an answer (or the close) came: stop
                    break
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection: its answer is read below
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read()), sent


def get(url: str) -> tuple[int, bytes, str]:
    """(status, body, content type) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")

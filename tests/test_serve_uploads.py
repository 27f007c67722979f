"""`fakedetect serve`'s upload handling under a real uvicorn server on a loopback port, over a
stand-in for the trained run (tests/stub_service.py): files arrive byte for byte, sent with a
Content-Length or chunked; a file over `--max-upload-mb` ends the request with 413 as soon as
it passes the cap, after the server has taken in little more than the cap, and neither the
server's temporary files nor its memory grow with the rest of the body."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from serve_server import post_files, running_stub, stream_files

CAP = 2**20  # --max-upload-mb 1
HUGE = 300 * 2**20
PIECE = os.urandom(2**16)


def pieces(size: int):
    """`size` bytes (random, repeated every 64 KiB) in pieces of 64 KiB."""
    for start in range(0, size, len(PIECE)):
        yield PIECE[: min(len(PIECE), size - start)]


def split(data: bytes, size: int = 50_000):
    return [data[i:i + size] for i in range(0, len(data), size)]


def resident_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def disk_bytes(pid: int, folder: Path) -> int:
    """Bytes in the regular files under `folder`, counting those the process holds open there after
    deleting them (an unnamed spool file) once."""
    sizes = {}
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                found = os.stat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            sizes[found.st_ino] = found.st_size
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(folder)):
                found = os.stat(f"/proc/{pid}/fd/{fd}")
                if stat.S_ISREG(found.st_mode):  # not a folder the server holds open (shutil.rmtree does)
                    sizes[found.st_ino] = found.st_size
        except (FileNotFoundError, OSError):
            continue
    return sum(sizes.values())


class Peaks:
    """The server process's largest resident memory and temporary-file bytes, sampled every 5 ms
    while the block runs."""

    def __init__(self, pid: int, folder: Path):
        self.pid, self.folder = pid, folder
        self.memory = self.disk = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.memory = max(self.memory, resident_bytes(self.pid))
            self.disk = max(self.disk, disk_bytes(self.pid, self.folder))
            self._stop.wait(0.005)

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    tmpdir = tmp_path_factory.mktemp("server_tmp")
    with running_stub(CAP, tmpdir) as (url, process):
        yield url, process.pid, tmpdir


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_files_arrive_whole_in_upload_order(stub, chunked):
    url, _, tmpdir = stub
    files = [("a.png", os.urandom(CAP)), ("b.jpg", os.urandom(100_003)), ("empty.png", b""), ("c", os.urandom(7))]
    status, body, sent = stream_files(url, [(n, len(d), split(d)) for n, d in files], chunked)
    assert status == 200
    got = [(i["path"], i.get("size"), i.get("sha256"), i["status"]) for i in body["images"]]
    assert got == [("a.png", CAP, hashlib.sha256(files[0][1]).hexdigest(), "ok"),
                   ("b.jpg", 100_003, hashlib.sha256(files[1][1]).hexdigest(), "ok"),
                   ("empty.png", None, None, "unreadable"), ("c", 7, hashlib.sha256(files[3][1]).hexdigest(), "ok")]
    assert body["images"][2]["reason"] == "empty_file" and body["images"][2]["http_status"] == 400
    assert sent > CAP + 100_000
    assert os.listdir(tmpdir) == []  # the request's folder is gone


# 300 MiB with a Content-Length is over the request's bound (256 files of the cap and 1 MiB): refused
# before any of the body is read; 200 MiB is under it, so the file's cap stops it.
@pytest.mark.parametrize("chunked, size, error", [(True, HUGE, "file_too_large"), (False, 200 * 2**20, "file_too_large"),
                                                  (False, HUGE, "request_too_large")],
                         ids=["chunked", "content-length", "content-length-over-the-request-bound"])
def test_a_file_far_over_the_cap_is_refused_once_it_passes_it(stub, chunked, size, error):
    url, pid, tmpdir = stub
    before = resident_bytes(pid)
    with Peaks(pid, tmpdir) as peaks:
        status, body, sent = stream_files(url, [("ok.png", 1000, pieces(1000)), ("huge.jpg", size, pieces(size))],
                                          chunked)
    assert (status, body["error"]) == (413, error)
    assert error != "file_too_large" or "huge.jpg" in body["message"]
    # What left the client is what the server took in plus the two sockets' buffers (under 1 MiB
    # measured here); a server that read the whole body before answering took in all of it.
    assert sent < CAP + 8 * 2**20, sent
    assert peaks.disk <= CAP + 1000
    assert peaks.memory - before < 32 * 2**20
    assert os.listdir(tmpdir) == []
    # the server serves on
    assert post_files(url, [("after.png", b"x" * 10)])[0] == 200


def test_a_request_over_its_bound_is_refused_as_it_streams_in(stub):
    url, _, tmpdir = stub
    status, body, sent = stream_files(url, [(f"{i}.png", 1, [b"x"]) for i in range(257)], chunked=True)
    assert (status, body["error"]) == (413, "too_many_files")
    # a part of another field is not kept, but counts: 256 files of the cap and 1 MiB, then 413
    with Peaks(stub[1], tmpdir) as peaks:
        status, body, sent = stream_files(url, [("big.bin", HUGE, pieces(HUGE))], chunked=True, field="other")
    assert (status, body["error"]) == (413, "request_too_large")
    assert 256 * CAP < sent < 257 * CAP + 8 * 2**20 and peaks.disk == 0


def test_what_is_no_complete_upload_gets_400_and_leaves_nothing(stub):
    url, _, tmpdir = stub
    part = 'Content-Disposition: form-data; name="{}"{}\r\n\r\n'
    multipart = "multipart/form-data; boundary=b"
    cases = [("text/plain", b"just text", "bad_upload"),
             (multipart, ("--b\r\n" + part.format("files", '; filename="cut.png"')).encode() + b"half a file", "bad_upload"),
             (multipart, ("--b\r\n" + part.format("note", "") + "no file\r\n--b--\r\n").encode(), "no_file")]
    for content_type, body, error in cases:
        request = urllib.request.Request(url + "api/score", data=body, method="POST", headers={"Content-Type": content_type})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=60)
        assert (answer.value.code, json.loads(answer.value.read())["error"]) == (400, error), body
    assert os.listdir(tmpdir) == []


def test_a_client_that_goes_away_mid_upload_leaves_nothing(stub):
    url, _, tmpdir = stub
    address = urllib.parse.urlsplit(url)
    with socket.create_connection((address.hostname, address.port)) as sock:
        sock.sendall(b"POST /api/score HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     b"Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"files\"; "
                     b"filename=\"a.png\"\r\n\r\n" + b"x" * 5000)
        deadline = time.monotonic() + 10
        while not os.listdir(tmpdir) and time.monotonic() < deadline:  # the upload has begun
            time.sleep(0.01)
    deadline = time.monotonic() + 10
    while os.listdir(tmpdir) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.listdir(tmpdir) == []
    assert post_files(url, [("after.png", b"x")])[0] == 200

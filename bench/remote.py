"""Push and pull times of the demo's features (data/features, after `make repro`) through a
folder remote and an S3 remote (moto's server on loopback). Prints `name: value` lines. The work is the
run's features: `--smoke` is accepted for `make bench` alike and changes nothing (a small demo's run
takes seconds)."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from fakedetect import artifacts
from fakedetect.features import feature_files

PROJECT = Path(__file__).resolve().parents[1]
FEATURES = PROJECT / artifacts.FEATURES
DVC = [sys.executable, "-m", "dvc"]
ENV = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.org",
       "DVC_NO_ANALYTICS": "1"}  # the repositories made here send no usage analytics: nothing leaves this machine


def sh(cmd, cwd) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=ENV)


def timed(cmd, cwd) -> float:
    start = time.perf_counter()
    sh(cmd, cwd)
    return time.perf_counter() - start


def moto_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto server did not start")


def measure(name: str, folder: Path, url: str, endpoint: str | None) -> None:
    repo = folder / name
    repo.mkdir()
    sh(["git", "init", "-q"], repo)
    sh(DVC + ["init", "-q"], repo)
    shutil.copytree(FEATURES, repo / "features")
    sh(DVC + ["add", "features"], repo)
    sh(DVC + ["remote", "add", "-d", "store", url], repo)
    if endpoint:
        sh(DVC + ["remote", "modify", "store", "endpointurl", endpoint], repo)
        for key, value in (("access_key_id", "bench"), ("secret_access_key", "bench"), ("region", "us-east-1")):
            sh(DVC + ["remote", "modify", "--local", "store", key, value], repo)
    size_mb = sum(p.stat().st_size for p in FEATURES.rglob("*") if p.is_file()) / 2**20
    push = timed(DVC + ["push"], repo)
    shutil.rmtree(repo / "features")
    shutil.rmtree(repo / ".dvc" / "cache")
    pull = timed(DVC + ["pull"], repo)
    print(f"{name}_features_mb: {size_mb:.2f}")
    print(f"{name}_push_s: {push:.2f}")
    print(f"{name}_pull_s: {pull:.2f}")
    print(f"{name}_push_mb_per_s: {size_mb / push:.2f}")
    print(f"{name}_pull_mb_per_s: {size_mb / pull:.2f}")


def main() -> None:
    if not (FEATURES / feature_files.MATRIX).is_file():
        sys.exit(f"{FEATURES} is missing: run `make repro` first")
    server, endpoint = moto_server()
    try:
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench",
                     region_name="us-east-1").create_bucket(Bucket="bench")
        with tempfile.TemporaryDirectory() as tmp:
            measure("folder", Path(tmp), str(Path(tmp) / "remote"), None)
            measure("s3_moto", Path(tmp), "s3://bench/cache", endpoint)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()

"""Sharing features through a DVC remote, with real servers: a teammate pulls the features only
and runs the classifiers without raw images, preprocessed images or backbone weights (through a
folder remote; through S3 the pulled features are checked byte for byte, the stages after them
being the same either way)."""
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import DVC, free_port, private_copy, run

DOWNSTREAM = ["nn_eval", "linear_train", "linear_eval"]
METRICS = ["metrics/nn_eval.json", "metrics/linear_eval.json"]


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on a free loopback port, started and stopped here."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("moto server did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def computed(trained_project, tmp_path) -> Path:
    """Machine A: has run the pipeline and committed dvc.lock (a copy of its own, to add the remote to)."""
    return private_copy(trained_project, tmp_path / "machine_a")


def add_remote(project: Path, url: str, s3_endpoint: str | None, local_only: bool = False) -> None:
    if not local_only:
        run(DVC + ["remote", "add", "-f", "-d", "store", url], project)
        if s3_endpoint:
            run(DVC + ["remote", "modify", "store", "endpointurl", s3_endpoint], project)
    if s3_endpoint:  # credentials stay out of git, in .dvc/config.local
        for key, value in (("access_key_id", "testing"), ("secret_access_key", "testing"), ("region", "us-east-1")):
            run(DVC + ["remote", "modify", "--local", "store", key, value], project)


def share_and_pull(computed: Path, where: Path, url: str, s3_endpoint: str | None = None) -> Path:
    add_remote(computed, url, s3_endpoint)
    run(["git", "commit", "-qam", "remote"], computed)
    run(DVC + ["push"], computed)
    clone = where / "machine_b"
    run(["git", "clone", "-q", str(computed), str(clone)], where)
    add_remote(clone, url, s3_endpoint, local_only=True)
    run(DVC + ["pull", "extract_clip"], clone)
    return clone


def assert_features_only(computed: Path, clone: Path) -> None:
    """The clone holds the features, the same bytes as machine A's, and none of the images."""
    pulled = sorted(path.relative_to(clone) for path in (clone / "data/features").rglob("*") if path.is_file())
    assert Path("data/features/features.npy") in pulled
    for name in pulled:
        assert (clone / name).read_bytes() == (computed / name).read_bytes(), name
    for absent in ("data/demo", "data/manifest.csv", "data/preprocessed", "data/preprocessed.csv"):
        assert not (clone / absent).exists(), absent


def assert_downstream_runs_alike(computed: Path, clone: Path) -> None:
    assert_features_only(computed, clone)
    run(DVC + ["repro", "--allow-missing", "--force", "--single-item"] + DOWNSTREAM, clone)
    for name in METRICS:
        assert json.loads((clone / name).read_text()) == json.loads((computed / name).read_text()), name


def test_folder_remote(computed, tmp_path):
    remote = tmp_path / "remote"
    clone = share_and_pull(computed, tmp_path, str(remote))
    assert any(remote.rglob("*")), "nothing was pushed"
    assert_downstream_runs_alike(computed, clone)


def test_s3_remote_on_moto(computed, tmp_path, s3_server):
    import boto3

    boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket="features")
    clone = share_and_pull(computed, tmp_path, "s3://features/cache", s3_endpoint=s3_server)
    assert "config.local" not in subprocess.run(["git", "ls-files", ".dvc"], cwd=clone, capture_output=True,
                                                text=True).stdout
    assert_features_only(computed, clone)

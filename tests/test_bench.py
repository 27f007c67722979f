"""Every bench script runs: each one, with `--smoke` (tiny sizes), on a small demo's finished run, so
that a renamed or moved name breaks the test instead of `make bench` weeks later (here those that train
or load models; tests/test_bench_data_path.py the rest); and every address a test or bench names is on
this machine's loopback."""
import re

import pytest

from helpers import BENCHES, MODEL_BENCHES, PROJECT, run_bench_smoke


@pytest.mark.parametrize("name", [name for name in BENCHES if name in MODEL_BENCHES])
def test_bench_runs_with_smoke_sizes(trained_project, name):
    run_bench_smoke(trained_project, name)


# An address is a whole token (text between spaces, quotes, brackets and commas): a dotted quad, maybe
# in a URL or with a port; one inside a longer token (a four-part version after `==`, a five-part one) is none.
TOKENS = re.compile(r"[\s'\"`()\[\]{}<>,;]+")
ADDRESS = re.compile(r"(?:[a-z][a-z0-9+.-]*://)?(?:[^@/]*@)?((?:\d{1,3}\.){3}\d{1,3})(?::\d+)?(?:/\S*)?", re.I)


def outside_loopback(text: str) -> list[str]:
    """The IPv4 addresses in `text` outside 127.0.0.0/8 and 0.0.0.0: what `grep -rE
    "([0-9]{1,3}\\.){3}[0-9]{1,3}"` shows, less the dotted quads that are no address."""
    found = []
    for token in TOKENS.split(text):
        match = ADDRESS.fullmatch(token.rstrip(".:"))
        if match:
            address = match.group(1)
            if max(int(octet) for octet in address.split(".")) <= 255 and address.split(".")[0] != "127" \
                    and address != "0.0.0.0":
                found.append(address)
    return found


def _quad(*octets: int) -> str:
    """A dotted quad, built so that this file names none (the check below reads it too)."""
    return ".".join(map(str, octets))


@pytest.mark.fast
def test_the_address_check_tells_addresses_from_versions():
    private, lan, public = _quad(10, 255, 255, 1), _quad(192, 168, 0, 7), _quad(8, 8, 8, 8)
    text = (f"ray://{private}:10001 http://{_quad(127, 0, 0, 1)}:8000/x {_quad(0, 0, 0, 0)} "
            f"numpy=={_quad(2, 14, 1, 0)} v{_quad(1, 2, 3, 4)} {_quad(1, 2, 3, 4)}.5 ('{lan}', 80) "
            f"({public}). {_quad(999, 1, 1, 1)} {_quad(127, 255, 0, 1)}")
    assert outside_loopback(text) == [private, lan, public]


@pytest.mark.fast
def test_tests_and_benches_name_only_loopback_addresses():
    """Tests and benches may only ever reach this machine: an unreachable cluster is a closed
    loopback port, never a private-range address that might answer somewhere."""
    found = {}
    for folder in ("tests", "bench"):
        for path in sorted((PROJECT / folder).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".json", ".yaml", ".txt", ".md", ".csv", ""):
                addresses = outside_loopback(path.read_text(errors="replace"))
                if addresses:
                    found[path.relative_to(PROJECT).as_posix()] = addresses
    assert found == {}

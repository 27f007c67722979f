"""The project's layout stays honest.

Every stage's `deps` in dvc.yaml name all of its code, as `fakedetect deps` generates them from the
imports (fakedetect/stage_deps.py says why); the package's import graph has no cycle; and
docs/architecture.md's module map lists the package's modules."""
from __future__ import annotations

import graphlib
import os
import subprocess
import sys

import pytest

from fakedetect import stage_deps
from helpers import PROJECT

PACKAGE = "fakedetect"


@pytest.mark.fast
def test_every_stage_deps_name_all_of_its_code():
    """What `fakedetect deps --check` checks (CI runs it here): each stage's code deps are its imports."""
    assert stage_deps.check(PROJECT) == []


def _project(tmp_path, files: dict[str, str]):
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    return tmp_path


TOY = {"stages/s.py": "from fakedetect import a\n",
       "fakedetect/__init__.py": "",
       "fakedetect/a.py": "def f():\n    from fakedetect.b import g\n",
       "fakedetect/b.py": "import fakedetect.c\n",
       "fakedetect/c.py": "", "fakedetect/unused.py": ""}


@pytest.mark.fast
def test_the_import_graph_is_followed_through_modules(tmp_path):
    """A module reached only through another module counts, and so does a lazy import."""
    project = _project(tmp_path, TOY)
    assert stage_deps.generated_deps(project, "stages/s.py") == [
        "stages/s.py", "fakedetect/__init__.py", "fakedetect/a.py", "fakedetect/b.py", "fakedetect/c.py"]


DVC_YAML = """\
stages:
  s:  # a stage
    cmd: python stages/s.py
    deps:
      - stages/s.py
      - fakedetect/unused.py
      - fakedetect/a.py
      - data/in  # its input
      - fakedetect/c.py
    outs:
      - out
  t:
    foreach: [x, y]
    do:
      cmd: python stages/s.py
      deps:
        - stages/s.py
        - fakedetect/__init__.py
        - fakedetect/a.py
        - fakedetect/b.py
        - fakedetect/c.py
"""


def test_deps_command_names_what_differs_then_writes_it(tmp_path):
    """`fakedetect deps --check` exits 1 naming the stage and its missing and extra modules;
    `--write` rewrites them (the script, then the modules sorted; other deps and comments kept),
    after which --check passes."""
    project = _project(tmp_path, TOY | {"dvc.yaml": DVC_YAML})
    deps = [sys.executable, "-m", "fakedetect", "deps", "--project", str(project)]
    env = os.environ | {"PYTHONPATH": str(PROJECT)}
    checked = subprocess.run(deps + ["--check"], capture_output=True, text=True, env=env)
    assert checked.returncode == 1, checked.stderr
    assert checked.stdout.splitlines()[0] == ("s: missing fakedetect/__init__.py, fakedetect/b.py (imported, not in "
                                              "its deps); extra fakedetect/unused.py (in its deps, not imported)")
    assert "t:" not in checked.stdout
    written = subprocess.run(deps + ["--write"], capture_output=True, text=True, env=env)
    assert written.returncode == 0 and "rewrote the code deps of s" in written.stdout
    assert (project / "dvc.yaml").read_text() == DVC_YAML.replace("""\
      - stages/s.py
      - fakedetect/unused.py
      - fakedetect/a.py
      - data/in  # its input
      - fakedetect/c.py
""", """\
      - stages/s.py
      - fakedetect/__init__.py
      - fakedetect/a.py
      - fakedetect/b.py
      - fakedetect/c.py
      - data/in  # its input
""")
    assert subprocess.run(deps, capture_output=True, env=env).returncode == 0  # --check is the default


def import_graph(project=PROJECT) -> dict[str, set[str]]:
    """Each module of the package -> the modules its imports name, at the top or in a function (all
    run; a package's `__init__.py`, which Python runs first, counts where an import names it)."""
    modules = [p.relative_to(project).as_posix() for p in sorted((project / PACKAGE).rglob("*.py"))]
    return {m: stage_deps.named_modules(project, m) - {m} for m in modules}


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same between packages (fakedetect/features, ...; a top-level module stands for itself)."""
    def package(path: str) -> str:
        return "/".join(path.split("/")[:2])

    packages = {}
    for module, imported in graph.items():
        packages.setdefault(package(module), set()).update(package(m) for m in imported if package(m) != package(module))
    return packages


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of the graph (its nodes, the first repeated at the end), or []."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(reversed(exc.args[1]))  # graphlib lists it against the import direction
    return []


@pytest.mark.fast
def test_the_cycle_check_finds_a_cycle(tmp_path):
    project = _project(tmp_path, {"fakedetect/__init__.py": "", "fakedetect/x/__init__.py": "",
                                  "fakedetect/x/a.py": "def f():\n    from fakedetect.y.b import g\n",
                                  "fakedetect/y/__init__.py": "", "fakedetect/y/b.py": "from fakedetect.y import c\n",
                                  "fakedetect/y/c.py": "from fakedetect.x.a import f\n"})
    graph = import_graph(project)
    assert cycle(graph) in (["fakedetect/x/a.py", "fakedetect/y/b.py", "fakedetect/y/c.py", "fakedetect/x/a.py"],
                            ["fakedetect/y/b.py", "fakedetect/y/c.py", "fakedetect/x/a.py", "fakedetect/y/b.py"],
                            ["fakedetect/y/c.py", "fakedetect/x/a.py", "fakedetect/y/b.py", "fakedetect/y/c.py"])
    graph["fakedetect/y/c.py"] = {"fakedetect/y/__init__.py"}
    assert cycle(graph) == [] and cycle(package_graph(graph)) == []
    graph["fakedetect/y/c.py"] = {"fakedetect/x/__init__.py"}  # y imports x's package, x imports y: a cycle of packages
    assert cycle(graph) == [] and set(cycle(package_graph(graph))) == {"fakedetect/x", "fakedetect/y"}


@pytest.mark.fast
def test_no_import_cycle_between_modules():
    """An import cycle makes a module's behaviour depend on which of the two is imported first."""
    assert cycle(import_graph()) == []


@pytest.mark.fast
def test_no_import_cycle_between_packages():
    """The packages form layers (params < data < features < detectors < evaluation < attribution, ...):
    each one can be read, tested and changed knowing only those below it."""
    assert cycle(package_graph(import_graph())) == []


@pytest.mark.fast
def test_the_module_map_lists_every_library_module():
    """docs/architecture.md's module map names each module by its path below fakedetect/
    (`cli.py`, `features/store.py`) and each group by its folder (`features/`)."""
    page = (PROJECT / "docs" / "architecture.md").read_text()
    section = page[page.index("## The module map"):]
    section = section[:section.find("\n## ", 1)]
    root = PROJECT / PACKAGE
    modules = [p.relative_to(root).as_posix() for p in root.rglob("*.py") if not p.name.startswith("_")]
    modules += [f"{p.name}/" for p in root.iterdir() if (p / "__init__.py").is_file()]
    assert [m for m in sorted(modules) if f"`{m}`" not in section] == []

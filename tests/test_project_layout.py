"""The project's layout stays honest.

Every stage's `deps` in dvc.yaml name all of its code: the stage script and every module of the
package that it imports, directly or through other modules (imports inside functions count: they
run too). A missing one would leave the stage's outputs stale after a change to that module while
`dvc status` said all is up to date. And docs/architecture.md's module map lists the package's modules."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from helpers import PROJECT

PACKAGE = "fakedetect"


def _imported_modules(source: Path) -> set[str]:
    """Package modules (as paths relative to the project) that `source` imports anywhere in its code."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from fakedetect import a, b` imports the modules a and b; `from fakedetect.a import f`, a
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                parts = name.split(".")
                for path in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")):
                    if (PROJECT / path).is_file():
                        found.add(path.as_posix())
                # importing a.b runs a/__init__.py first
                for i in range(1, len(parts)):
                    if (PROJECT / Path(*parts[:i], "__init__.py")).is_file():
                        found.add(Path(*parts[:i], "__init__.py").as_posix())
    return found


def stage_code(script: str) -> set[str]:
    """The script and every package module it reaches through imports."""
    todo, seen = [script], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_imported_modules(PROJECT / path) - seen)
    return seen


def _stages() -> dict:
    """Each stage definition of dvc.yaml; a foreach group by its `do` (one definition for every entry)."""
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


@pytest.mark.parametrize("name", sorted(_stages()))
@pytest.mark.fast
def test_stage_deps_name_all_of_its_code(name):
    stage = _stages()[name]
    script = stage["cmd"].removeprefix("python ")
    assert stage["cmd"] == f"python {script}" and script.startswith("stages/"), f"{name}: expected 'python stages/<script>.py'"
    code_deps = {d for d in stage["deps"] if d.endswith(".py")}
    needed = stage_code(script)
    missing = sorted(needed - code_deps)
    assert not missing, f"dvc.yaml stage '{name}' imports {missing} but does not list them in its deps"
    extra = sorted(code_deps - needed)
    assert not extra, f"dvc.yaml stage '{name}' lists {extra} in its deps, but does not import them"


@pytest.mark.fast
def test_the_import_graph_is_followed_through_modules(tmp_path, monkeypatch):
    """A module reached only through another module counts, and so does a lazy import."""
    import helpers
    for path, text in {"stages/s.py": "from fakedetect import a\n",
                       "fakedetect/__init__.py": "",
                       "fakedetect/a.py": "def f():\n    from fakedetect.b import g\n",
                       "fakedetect/b.py": "import fakedetect.c\n",
                       "fakedetect/c.py": "", "fakedetect/unused.py": ""}.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    monkeypatch.setattr(helpers, "PROJECT", tmp_path)
    monkeypatch.setitem(globals(), "PROJECT", tmp_path)
    assert stage_code("stages/s.py") == {"stages/s.py", "fakedetect/__init__.py", "fakedetect/a.py",
                                         "fakedetect/b.py", "fakedetect/c.py"}


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

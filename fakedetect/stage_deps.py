"""Every stage's code deps in dvc.yaml, generated from the imports (`fakedetect deps --check|--write`).

A stage's code is its script and every module of the package that the script imports, directly
or through other modules; imports inside functions count (they run too), and importing `a.b` runs
`a/__init__.py` first. Were one missing from the stage's deps, a change to it would leave the
stage's outputs stale while `dvc status` said all is up to date. The generated list is the script,
then the modules sorted by path; the stage's other deps (data, models) follow, comments kept.
"""
from __future__ import annotations

import ast
import io
import os
from dataclasses import dataclass
from pathlib import Path

from fakedetect import atomic
from fakedetect.round_trip import round_trip_yaml

PACKAGE = "fakedetect"
DVC_FILE = "dvc.yaml"


def module_path(project: Path, name: str) -> str | None:
    """The file (relative to the project) of the module or package `name`, or None when `name` is
    not a module (a function or class imported from one)."""
    parts = name.split(".")
    for path in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")):
        if (project / path).is_file():
            return path.as_posix()
    return None


def named_modules(project: Path, source: str) -> set[str]:
    """The package modules (paths relative to the project) that `source` names in an import, at the
    top or in a function: `from fakedetect.a import b` names the module b, or a when b is a name
    that a defines."""
    names = set()
    for node in ast.walk(ast.parse((project / source).read_text(), filename=source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.update(f"{node.module}.{alias.name}" if module_path(project, f"{node.module}.{alias.name}")
                         else node.module for alias in node.names)
    return {module_path(project, n) for n in names if n.split(".")[0] == PACKAGE} - {None}


def imported_modules(project: Path, source: str) -> set[str]:
    """The package modules that running `source`'s imports executes: those it names, and the
    `__init__.py` of each package above them (importing a.b runs a/__init__.py first)."""
    found = set()
    for path in named_modules(project, source):
        parts = Path(path).parent.parts
        found.update(f"{'/'.join(parts[:i])}/__init__.py" for i in range(1, len(parts) + 1))
        found.add(path)
    return {p for p in found if (project / p).is_file()}


def stage_code(project: Path, script: str) -> set[str]:
    """The script and every package module it reaches through imports."""
    todo, seen = [script], set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imported_modules(project, path) - seen)
    return seen


def generated_deps(project: Path, script: str) -> list[str]:
    """A stage's code deps as dvc.yaml lists them: the script, then its modules sorted by path."""
    return [script] + sorted(stage_code(project, script) - {script})


@dataclass
class StageDeps:
    """One stage's code deps: as dvc.yaml lists them and as its imports make them."""

    name: str
    listed: list[str]
    generated: list[str]

    def problem(self) -> str | None:
        """What is wrong with the listed deps, or None."""
        missing = [p for p in self.generated if p not in self.listed]
        extra = [p for p in self.listed if p not in self.generated]
        found = ([f"missing {', '.join(missing)} (imported, not in its deps)"] if missing else []) + \
                ([f"extra {', '.join(extra)} (in its deps, not imported)"] if extra else [])
        if not found and self.listed != self.generated:
            found.append("not in the generated order (the script, then the modules sorted)")
        return f"{self.name}: {'; '.join(found)}" if found else None


def _definitions(document) -> dict:
    """Each stage's definition; a foreach group's `do` (one definition for every entry)."""
    return {name: stage.get("do", stage) for name, stage in document["stages"].items()}


def _script(name: str, stage) -> str:
    command = str(stage["cmd"])
    script = command.removeprefix("python ")
    if command != f"python {script}" or not script.startswith("stages/") or " " in script:
        raise ValueError(f"dvc.yaml stage '{name}': cmd is {command!r}, expected 'python stages/<script>.py'")
    return script


def _is_code(dep) -> bool:
    return str(dep).endswith(".py")


def stages(project: Path, document=None) -> list[StageDeps]:
    """Every stage of the project's dvc.yaml, its code deps listed and generated."""
    if document is None:
        document = round_trip_yaml().load((project / DVC_FILE).read_text())
    return [StageDeps(name, [str(d) for d in stage["deps"] if _is_code(d)], generated_deps(project, _script(name, stage)))
            for name, stage in _definitions(document).items()]


def check(project: Path) -> list[str]:
    """What differs between dvc.yaml's code deps and the generated ones, one line per stage."""
    return [problem for problem in (stage.problem() for stage in stages(project)) if problem]


def write(project: Path) -> list[str]:
    """Rewrite dvc.yaml's code deps as generated (atomically; comments, layout and every other dep
    kept). Returns the names of the stages that changed."""
    from ruamel.yaml.comments import CommentedSeq

    rt = round_trip_yaml()
    document = rt.load((project / DVC_FILE).read_text())
    changed = []
    for stage, definition in zip(stages(project, document), _definitions(document).values()):
        if stage.listed == stage.generated:
            continue
        old = definition["deps"]
        new = CommentedSeq(stage.generated)
        for i, dep in enumerate(old):
            if not _is_code(dep):
                new.append(dep)
                if i in old.ca.items:  # the comment after it
                    new.ca.items[len(new) - 1] = old.ca.items[i]
        definition["deps"] = new
        changed.append(stage.name)
    if changed:
        text = io.StringIO()
        rt.dump(document, text)
        atomic.write_text(project / DVC_FILE, text.getvalue())
    return changed


def command(project: str | os.PathLike, rewrite: bool) -> int:
    """`fakedetect deps`: 0 when dvc.yaml's code deps are as generated (or were rewritten), 1 when not."""
    project = Path(project)
    if rewrite:
        changed = write(project)
        print(f"{DVC_FILE}: rewrote the code deps of {', '.join(changed)}" if changed
              else f"{DVC_FILE}: every stage's code deps were already as generated")
        return 0
    problems = check(project)
    for problem in problems:
        print(problem)
    print(f"{DVC_FILE}: {len(problems)} stage(s) differ from their imports; `fakedetect deps --write` rewrites them"
          if problems else f"{DVC_FILE}: every stage's code deps match its imports")
    return 1 if problems else 0

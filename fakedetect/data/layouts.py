"""Dataset folder layouts -> candidate files with labels, and the manifest that records them.

Understands CNNDetection/UnivFD training folders, CNNDetection test sets with or without
class folders, UnivFD diffusion sets with shared real pools, and generic real/fake folders.
Labels come from folder names only, never file names. A root that does not fit its layout
stops with the params entry named; every image folder below a root is read or recorded with
the reason it was not, so that nothing with images in it is dropped without a word.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


from fakedetect import vocabulary
from fakedetect.data.images import IMAGE_EXTENSIONS
from fakedetect.stage import UserError

# Folder name -> label (0 real, 1 fake); matched case-insensitively.
LABEL_DIRS = {"0_real": 0, "real": 0, "1_fake": 1, "fake": 1}

LSUN_CLASSES = (
    "airplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse "
    "motorbike person pottedplant sheep sofa train tvmonitor"
).split()

SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}

# UnivFD's diffusion sets take their real images from a shared pool.
REAL_POOL = {"guided": "imagenet"}
DEFAULT_REAL_POOL = "laion"


@dataclass(frozen=True)
class Candidate:
    """A file found in a dataset layout, labelled by its folders, not yet read."""

    path: str
    split: str
    test_set: str  # "" for train and val
    label: int
    generator: str  # "real" for real images
    family: str
    category: str  # the class folder (an LSUN class; the source photo in the demo), or ""


# What each layout reads below its root, for messages.
SHAPES = {
    "wang2020": "<root>/<split>/<generator>/<class>/{0_real,1_fake}",
    "cnndetection_test": "<root>/<set>/{0_real,1_fake} or <root>/<set>/<class>/{0_real,1_fake}",
    "univfd_diffusion": "<root>/<set>/1_fake with real pools <root>/laion/0_real and <root>/imagenet/0_real",
    "generic": "0_real/1_fake (or real/fake) folders anywhere below the root",
}


@dataclass
class Scan:
    """What a scan of the dataset roots found besides the candidates."""

    candidates: list[Candidate] = field(default_factory=list)
    ignored_files: int = 0  # files without an image extension
    empty_folders: list[str] = field(default_factory=list)
    used_folders: set[str] = field(default_factory=set)  # label folders with images, read
    unselected_folders: dict[str, str] = field(default_factory=dict)  # image folders the params leave out: why
    ignored_folders: dict[str, str] = field(default_factory=dict)  # image folders in no place a layout reads: why


def _label_of(name: str) -> int | None:
    return LABEL_DIRS.get(name.lower())


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _walk(top: Path):
    """os.walk that follows symbolic links to folders (datasets are often linked in) but visits
    each real folder once, so a link loop cannot make it run forever."""
    seen = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        yield dirpath, dirnames, filenames


def _label_dirs_below(top: Path) -> list[Path]:
    """Every label folder at or below `top`, not listing what is inside one (its images belong to
    it, and a training folder holds thousands)."""
    if _label_of(top.name) is not None:
        return [top]
    found = []
    for dirpath, dirnames, _ in _walk(top):
        labels = [name for name in dirnames if _label_of(name) is not None]
        found += [Path(dirpath, name) for name in labels]
        dirnames[:] = [name for name in dirnames if name not in labels]
    return sorted(found)


def _image_folders(top: Path, skip: set[str]) -> list[Path]:
    """Every folder at or below `top` that directly holds a file with an image extension, not
    listing the folders of `skip` (those already read) again."""
    if str(top) in skip:
        return []
    found = []
    for dirpath, dirnames, filenames in _walk(top):
        dirnames[:] = [name for name in dirnames if str(Path(dirpath, name)) not in skip]
        if any(name.lower().endswith(IMAGE_EXTENSIONS) for name in filenames):
            found.append(Path(dirpath))
    return found


def _show(folders: list[Path], base: Path, limit: int = 6) -> str:
    """A few folders relative to `base`, for a message."""
    names = [f"{folder.relative_to(base)}/" for folder in folders]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _image_entries(folder: Path, scan: Scan) -> list[str]:
    """Every entry with an image extension below `folder` (files, but also directories and
    broken links that carry one, so that they are recorded as skipped rather than lost)."""
    found = []
    for dirpath, dirnames, filenames in _walk(folder):
        for name in sorted(dirnames + filenames):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.join(dirpath, name))
            elif name in filenames:
                scan.ignored_files += 1
    if not found:
        scan.empty_folders.append(str(folder))
    return found


def _add(scan: Scan, label_dir: Path, label: int, *, split: str, test_set: str, generator: str,
         category: str, family: str | None = None) -> None:
    gen = "real" if label == 0 else generator
    fam = "real" if label == 0 else (family or vocabulary.family_of(generator))
    found = _image_entries(label_dir, scan)
    if found:
        scan.used_folders.add(str(label_dir))
    for path in found:
        scan.candidates.append(Candidate(path, split, test_set, label, gen, fam, category))


def _keep(names: list[str], wanted: list[str] | None, key: str, what: str) -> list[str]:
    if wanted is None:
        return names
    missing = sorted(set(wanted) - set(names))
    if missing:
        raise UserError(f"{key}: {what} {missing} not found; available: {names}")
    return [n for n in names if n in wanted]


def _refuse_split_folders(root: Path, key: str, layout: str) -> None:
    """A root holding train/, val/ or test/ is a dataset's top folder, one level above the folders
    this layout reads: read as it is, the splits would become test sets or be merged into one."""
    splits = [p for p in _subdirs(root) if p.name.lower() in SPLIT_ORDER]
    if splits:
        below = root / "test" if (root / "test").is_dir() else splits[0]
        raise UserError(f"{key}.root: {root} holds {_show(splits, root)}: folders named like splits, as a "
                        f"dataset's top folder does, where the {layout} layout expects {SHAPES[layout]}. "
                        f"Give the folder below (e.g. root: {below}); training folders take layout wang2020")


def _label_dirs_at(folder: Path, depths: set[int], key: str, expected: str) -> list[Path]:
    """The label folders below `folder`, which must all lie at one of `depths`: folders at mixed
    depths mean a wrong root or a stray copy, and reading some of them would drop the rest."""
    found = _label_dirs_below(folder)
    seen = sorted({len(d.relative_to(folder).parts) for d in found})
    if len(seen) > 1 or not set(seen) <= depths:
        raise UserError(f"{key}.root: {folder} has label folders at depth{'s' if len(seen) > 1 else ''} "
                        f"{', '.join(map(str, seen))} ({_show(found, folder)}); expected {expected}, all at one depth")
    return found


def _scan_wang2020(root: Path, source, key: str, scan: Scan) -> tuple[Path, dict[Path, str]]:
    """<root>/<split>/<generator>/<class>/{0_real,1_fake}/* (CNNDetection / UnivFD training)."""
    split_dir = root / source.split
    if not split_dir.is_dir():
        raise UserError(f"{key}.split: {split_dir} does not exist (wang2020 layout expects "
                        f"<root>/{source.split}/progan/<class>/0_real)")
    unselected = {}
    generators = [p.name for p in _subdirs(split_dir)]
    kept = _keep(generators, source.sets, f"{key}.sets", "generators")
    unselected |= {split_dir / g: f"not in {key}.sets" for g in generators if g not in kept}
    for gen_dir in (split_dir / g for g in kept):
        label_dirs = _label_dirs_at(gen_dir, {2}, key, f"{gen_dir}/<class>/{{0_real,1_fake}}")
        chosen = _keep([p.name for p in _subdirs(gen_dir)], source.classes, f"{key}.classes", "classes")
        for label_dir in label_dirs:
            if label_dir.parent.name not in chosen:
                unselected[label_dir.parent] = f"not in {key}.classes"
                continue
            _add(scan, label_dir, _label_of(label_dir.name), split=source.split,
                 test_set=gen_dir.name if source.split == "test" else "", generator=gen_dir.name,
                 category=label_dir.parent.name)
    return split_dir, unselected


def _scan_test_sets(root: Path, source, key: str, scan: Scan) -> tuple[Path, dict[Path, str]]:
    """<root>/<generator>/{0_real,1_fake} or <root>/<generator>/<class>/{0_real,1_fake}."""
    _refuse_split_folders(root, key, "cnndetection_test")
    names = [p.name for p in _subdirs(root)]
    kept = _keep(names, source.sets, f"{key}.sets", "test sets")
    unselected = {root / n: f"not in {key}.sets" for n in names if n not in kept}
    for name in kept:
        set_dir = root / name
        label_dirs = _label_dirs_at(set_dir, {1, 2}, key, f"{name}/{{0_real,1_fake}} or {name}/<class>/{{0_real,1_fake}}")
        merged = sorted({d.parent.name for d in label_dirs if d.parent != set_dir and vocabulary.is_generator_name(d.parent.name)})
        if merged:
            raise UserError(f"{key}.root: test set '{name}' ({set_dir}) holds generator folders {merged} as its "
                            f"classes: their real and fake images would be merged into one set. The root is "
                            f"probably one level too high: give root: {set_dir}")
        if not label_dirs:
            scan.empty_folders.append(str(set_dir))
        for label_dir in label_dirs:
            category = "" if label_dir.parent == set_dir else label_dir.parent.name
            if category and source.classes is not None and category not in source.classes:
                unselected[label_dir.parent] = f"not in {key}.classes"
                continue
            _add(scan, label_dir, _label_of(label_dir.name), split=source.split, test_set=name, generator=name,
                 category=category)
    return root, unselected


def _scan_diffusion(root: Path, source, key: str, scan: Scan) -> tuple[Path, dict[Path, str]]:
    """UnivFD's diffusion_datasets/<set>/1_fake with real pools laion/0_real and imagenet/0_real."""
    _refuse_split_folders(root, key, "univfd_diffusion")
    pools = {p.name for p in _subdirs(root) if (root / p.name / "0_real").is_dir()
             and not (root / p.name / "1_fake").is_dir()}
    sets = [p.name for p in _subdirs(root) if (p / "1_fake").is_dir()]
    kept = _keep(sets, source.sets, f"{key}.sets", "diffusion sets")
    unselected = {root / n: f"not in {key}.sets" for n in sets if n not in kept}
    unselected |= {root / pool: "a real pool that no selected set takes" for pool in pools}
    for name in kept:
        own_real = root / name / "0_real"
        pool = REAL_POOL.get(name, DEFAULT_REAL_POOL)
        if own_real.is_dir():
            real_dir = own_real
        elif pool in pools:
            real_dir = root / pool / "0_real"
        else:
            raise UserError(f"{key}.root: diffusion set '{name}' takes its real images from "
                            f"{root / pool / '0_real'}, which does not exist")
        _add(scan, real_dir, 0, split=source.split, test_set=name, generator=name, category="")
        _add(scan, root / name / "1_fake", 1, split=source.split, test_set=name, generator=name,
             category="")
    return root, unselected


def _scan_generic(root: Path, source, key: str, scan: Scan) -> tuple[Path, dict[Path, str]]:
    """Any folder with 0_real/1_fake (or real/fake) folders somewhere below it, at any depth."""
    _refuse_split_folders(root, key, "generic")
    name = source.name or root.name
    label_dirs = _label_dirs_below(root)
    if not label_dirs:
        raise UserError(f"{key}.root: no 0_real/1_fake (or real/fake) folder below {root}")
    generators = sorted({part for d in label_dirs for part in d.relative_to(root).parts[:-1] if vocabulary.is_generator_name(part)})
    if len(generators) > 1:
        raise UserError(f"{key}.root: {root} holds folders of the generators {generators}: the generic layout makes "
                        f"one test set ('{name}') of everything below its root, so they would be merged. Give one "
                        "generic entry per generator, or layout cnndetection_test for a folder of generator folders")
    for label_dir in label_dirs:
        category = str(label_dir.parent.relative_to(root)).replace(os.sep, "/")
        _add(scan, label_dir, _label_of(label_dir.name), split=source.split,
             test_set=name if source.split == "test" else "", generator=name,
             category="" if category == "." else category, family=source.family)
    return root, {}


SCANNERS = {
    "wang2020": _scan_wang2020,
    "cnndetection_test": _scan_test_sets,
    "univfd_diffusion": _scan_diffusion,
    "generic": _scan_generic,
}


def _account(scope: Path, unselected: dict[Path, str], key: str, layout: str, read_any: bool, scan: Scan) -> None:
    """Record every image folder below `scope` that was not read, and why: left out by the params,
    or in no place the layout reads. A source that read nothing while images lie below it stops."""
    ignored = []
    for folder in _image_folders(scope, scan.used_folders):
        chain = [folder, *folder.parents]
        why = next((unselected[f] for f in chain if f in unselected), None)
        if why:
            scan.unselected_folders[display_path(str(folder))] = why
        else:
            ignored.append(folder)
            scan.ignored_folders[display_path(str(folder))] = f"{key}: not where the {layout} layout reads images"
    if ignored and not read_any:
        raise UserError(f"{key}.root: {scope} holds images, but none where the {layout} layout reads them "
                        f"({SHAPES[layout]}); image folders found: {_show(ignored, scope)}")


def scan(sources, key: str = "ingest.datasets") -> Scan:
    """Find every candidate file of the given dataset sources (params DatasetSource list), then
    account for every image folder below their roots that no source read."""
    result = Scan()
    scanned = []
    for i, source in enumerate(sources):
        root = Path(source.root)
        if not root.is_dir():
            raise UserError(f"{key}.{i}.root: {root} does not exist or is not a folder")
        before = len(result.candidates)
        scope, unselected = SCANNERS[source.layout](root, source, f"{key}.{i}", result)
        scanned.append((scope, unselected, f"{key}.{i}", source.layout, len(result.candidates) > before))
    for entry in scanned:  # after all of them: a folder one source leaves out may be another's
        _account(*entry, result)
    return result


def display_path(path: str) -> str:
    """Paths inside the project are stored relative to it, others absolute; a name that is not
    valid UTF-8 is shown with backslash escapes (such files are skipped as non_utf8_name)."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    shown = absolute if relative.startswith("..") else relative
    return shown.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")

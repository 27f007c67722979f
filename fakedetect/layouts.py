"""Dataset folder layouts -> candidate files with labels, and the manifest that records them.

Understands the layouts of README "Real data" (CNNDetection/UnivFD training, CNNDetection test
sets with or without class folders, UnivFD diffusion sets with shared real pools,
generic real/fake folders). Labels come from folder names only, never file names.
"""
from __future__ import annotations

import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from fakedetect import images, vocabulary
from fakedetect.images import IMAGE_EXTENSIONS, BadImage, Limits
from fakedetect.stage import UserError

# Folder name -> label (0 real, 1 fake); matched case-insensitively.
LABEL_DIRS = {"0_real": 0, "real": 0, "1_fake": 1, "fake": 1}

LSUN_CLASSES = (
    "airplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse "
    "motorbike person pottedplant sheep sofa train tvmonitor"
).split()

# UnivFD's diffusion sets take their real images from a shared pool.
REAL_POOL = {"guided": "imagenet"}
DEFAULT_REAL_POOL = "laion"

COLUMNS = ["id", "path", "sha256", "split", "test_set", "label", "generator", "family",
           "category", "width", "height", "mode", "status", "reason"]
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


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


@dataclass
class Scan:
    """What a scan of the dataset roots found besides the candidates."""

    candidates: list[Candidate] = field(default_factory=list)
    ignored_files: int = 0  # files without an image extension
    empty_folders: list[str] = field(default_factory=list)


def _label_of(name: str) -> int | None:
    return LABEL_DIRS.get(name.lower())


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _label_dirs(folder: Path) -> list[tuple[Path, int]]:
    return [(p, _label_of(p.name)) for p in _subdirs(folder) if _label_of(p.name) is not None]


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
    for path in _image_entries(label_dir, scan):
        scan.candidates.append(Candidate(path, split, test_set, label, gen, fam, category))


def _keep(names: list[str], wanted: list[str] | None, key: str, what: str) -> list[str]:
    if wanted is None:
        return names
    missing = sorted(set(wanted) - set(names))
    if missing:
        raise UserError(f"{key}: {what} {missing} not found; available: {names}")
    return [n for n in names if n in wanted]


def _scan_wang2020(root: Path, source, key: str, scan: Scan) -> None:
    """<root>/<split>/<generator>/<class>/{0_real,1_fake}/* (CNNDetection / UnivFD training)."""
    split_dir = root / source.split
    if not split_dir.is_dir():
        raise UserError(f"{key}.split: {split_dir} does not exist (wang2020 layout expects "
                        f"<root>/{source.split}/progan/<class>/0_real)")
    for gen_dir in (split_dir / g for g in _keep([p.name for p in _subdirs(split_dir)], source.sets, f"{key}.sets", "generators")):
        classes = _keep([p.name for p in _subdirs(gen_dir)], source.classes, f"{key}.classes", "classes")
        for cls in classes:
            for label_dir, label in _label_dirs(gen_dir / cls):
                test_set = gen_dir.name if source.split == "test" else ""
                _add(scan, label_dir, label, split=source.split, test_set=test_set,
                     generator=gen_dir.name, category=cls)


def _scan_test_sets(root: Path, source, key: str, scan: Scan) -> None:
    """<root>/<generator>/{0_real,1_fake} or <root>/<generator>/<class>/{0_real,1_fake}."""
    for name in _keep([p.name for p in _subdirs(root)], source.sets, f"{key}.sets", "test sets"):
        set_dir = root / name
        direct = _label_dirs(set_dir)
        groups = [("", direct)] if direct else [(c.name, _label_dirs(c)) for c in _subdirs(set_dir)]
        if source.classes is not None and not direct:
            groups = [(c, dirs) for c, dirs in groups if c in source.classes]
        groups = [(c, dirs) for c, dirs in groups if dirs]
        if not groups:
            scan.empty_folders.append(str(set_dir))
        for category, dirs in groups:
            for label_dir, label in dirs:
                _add(scan, label_dir, label, split=source.split, test_set=name, generator=name,
                     category=category)


def _scan_diffusion(root: Path, source, key: str, scan: Scan) -> None:
    """UnivFD's diffusion_datasets/<set>/1_fake with real pools laion/0_real and imagenet/0_real."""
    pools = {p.name for p in _subdirs(root) if (root / p.name / "0_real").is_dir()
             and not (root / p.name / "1_fake").is_dir()}
    sets = [p.name for p in _subdirs(root) if (p / "1_fake").is_dir()]
    for name in _keep(sets, source.sets, f"{key}.sets", "diffusion sets"):
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


def _scan_generic(root: Path, source, key: str, scan: Scan) -> None:
    """Any folder with 0_real/1_fake (or real/fake) folders somewhere below it."""
    name = source.name or root.name
    label_dirs = []
    for dirpath, dirnames, _ in _walk(root):
        if _label_of(Path(dirpath).name) is not None:
            label_dirs.append((Path(dirpath), _label_of(Path(dirpath).name)))
            dirnames[:] = []  # images below a label folder belong to it
    label_dirs.sort()
    if not label_dirs:
        raise UserError(f"{key}.root: no 0_real/1_fake (or real/fake) folder below {root}")
    for label_dir, label in label_dirs:
        category = str(label_dir.parent.relative_to(root)).replace(os.sep, "/")
        _add(scan, label_dir, label, split=source.split, test_set=name if source.split == "test" else "",
             generator=name, category="" if category == "." else category, family=source.family)


SCANNERS = {
    "wang2020": _scan_wang2020,
    "cnndetection_test": _scan_test_sets,
    "univfd_diffusion": _scan_diffusion,
    "generic": _scan_generic,
}


def scan(sources, key: str = "ingest.datasets") -> Scan:
    """Find every candidate file of the given dataset sources (params DatasetSource list)."""
    result = Scan()
    for i, source in enumerate(sources):
        root = Path(source.root)
        if not root.is_dir():
            raise UserError(f"{key}.{i}.root: {root} does not exist or is not a folder")
        SCANNERS[source.layout](root, source, f"{key}.{i}", result)
    return result


def sample_test_sets(candidates: list[Candidate], max_per_class: int | None, seed: int) -> list[Candidate]:
    """UnivFD's sampling: per test set, shuffle with the seed and keep at most max_per_class
    real and fake files. Train and val are kept whole."""
    if max_per_class is None:
        return list(candidates)
    kept = [c for c in candidates if c.split != "test"]
    by_set: dict[str, list[Candidate]] = {}
    for c in candidates:
        if c.split == "test":
            by_set.setdefault(c.test_set, []).append(c)
    for name in sorted(by_set):
        rng = random.Random(seed)
        for label in (0, 1):
            files = sorted((c for c in by_set[name] if c.label == label), key=lambda c: c.path)
            rng.shuffle(files)
            kept.extend(files[:max_per_class])
    return kept


def sort_key(row: dict) -> tuple:
    return (SPLIT_ORDER[row["split"]], row["test_set"], row["label"], row["category"], row["path"])


def display_path(path: str) -> str:
    """Paths inside the project are stored relative to it, others absolute; a name that is not
    valid UTF-8 is shown with backslash escapes (such files are skipped as non_utf8_name)."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    shown = absolute if relative.startswith("..") else relative
    return shown.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _inspect(path: str, limits: Limits) -> tuple:
    try:
        decoded = images.load(path, limits)
    except BadImage as exc:
        return "", 0, 0, "", "skipped", exc.reason
    height, width = decoded.rgb.shape[:2]
    return decoded.sha256, width, height, decoded.mode, "ok", ""


def build_manifest(candidates: list[Candidate], limits: Limits, workers: int) -> pd.DataFrame:
    """Read every candidate once (in parallel): hash, decode, and record size or skip reason."""
    paths = sorted({c.path for c in candidates})
    with ProcessPoolExecutor(workers) as pool:
        results = dict(zip(paths, tqdm(pool.map(_inspect, paths, [limits] * len(paths), chunksize=16),
                                       total=len(paths), desc="ingest", unit="file", mininterval=2)))
    rows = []
    for c in candidates:
        sha256, width, height, mode, status, reason = results[c.path]
        rows.append(dict(path=display_path(c.path), sha256=sha256, split=c.split, test_set=c.test_set,
                         label=c.label, generator=c.generator, family=c.family, category=c.category,
                         width=width, height=height, mode=mode, status=status, reason=reason))
    rows.sort(key=sort_key)
    frame = pd.DataFrame(rows, columns=COLUMNS[1:])
    frame.insert(0, "id", range(len(frame)))
    return frame


def summarize(manifest: pd.DataFrame, scan_result: Scan) -> dict:
    """Counts for metrics/ingest.json: rows per set and class, skips per reason, conversions."""
    ok = manifest[manifest.status == "ok"]
    sets = {}
    for (split, test_set), group in ok.groupby(["split", "test_set"], sort=True):
        name = f"{split}/{test_set}" if test_set else split
        sets[name] = {"real": int((group.label == 0).sum()), "fake": int((group.label == 1).sum())}
    skipped = manifest[manifest.status == "skipped"]
    return {
        "rows": len(manifest),
        "ok": len(ok),
        "skipped": len(skipped),
        "skipped_by_reason": {k: int(v) for k, v in sorted(skipped.reason.value_counts().items())},
        "converted_to_rgb_from": {k: int(v) for k, v in sorted(ok[ok["mode"] != "RGB"]["mode"].value_counts().items())},
        "sets": sets,
        "ignored_non_image_files": scan_result.ignored_files,
        "empty_folders": sorted(display_path(p) for p in scan_result.empty_folders),
    }


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest CSV with its column types (empty strings stay empty strings)."""
    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    for column in ("id", "label", "width", "height"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column]).astype("int64")
    return frame

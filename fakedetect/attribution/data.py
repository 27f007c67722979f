"""Which rows each level trains, validates and tests on (params `attribution.levelN`), split so
that no test row shows an image, or a group of images, that training saw."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fakedetect.attribution.levels import HIERARCHY_LEVELS, LEVELS, Level, hierarchy_classes
from fakedetect.params import AttributionParams, GroupSplitParams, LevelParams, Selection
from fakedetect.stage import UserError

log = logging.getLogger("attribution")


@dataclass
class LevelData:
    """One level's rows (manifest rows plus a `target` column), split without leakage."""

    level: Level
    classes: tuple[str, ...]
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    test_rows_dropped: int = 0  # test rows whose image was trained or validated on
    sets_without_test_rows: tuple[str, ...] = ()  # selected test sets whose rows all went to training

    @property
    def name(self) -> str:
        return self.level.name

    def used_for_training(self) -> pd.DataFrame:
        return pd.concat([self.train, self.val])

    def split_counts(self) -> dict:
        def counts(part):
            return {c: int((part.target == i).sum()) for i, c in enumerate(self.classes)}

        return {"classes": list(self.classes), "train": counts(self.train), "val": counts(self.val),
                "test": counts(self.test), "test_rows_dropped_seen_in_training": self.test_rows_dropped,
                "sets_without_test_rows": list(self.sets_without_test_rows)}


def set_of(rows: pd.DataFrame) -> pd.Series:
    """Each row's set name as params name it: its split, or its test set."""
    return rows.split.where(rows.split != "test", rows.test_set)


def _set_names(rows: pd.DataFrame) -> list[str]:
    return sorted(set(set_of(rows)))


def select(rows: pd.DataFrame, selection: Selection, key: str) -> pd.DataFrame:
    """The rows of the named sets ('train', 'val' or test sets), fakes limited to `generators`."""
    unknown = sorted(set(selection.sets) - set(_set_names(rows)))
    if unknown:
        raise UserError(f"{key}.sets: unknown set(s) {unknown}; the preprocessed data has {_set_names(rows)}")
    in_split = (rows.split != "test") & rows.split.isin(selection.sets)
    in_test_set = (rows.split == "test") & rows.test_set.isin(selection.sets)
    picked = rows[in_split | in_test_set]
    if selection.generators is not None:
        present = sorted(set(picked.generator[picked.label == 1]))
        unknown = sorted(set(selection.generators) - set(present))
        if unknown:
            raise UserError(f"{key}.generators: unknown generator(s) {unknown}; the sets {selection.sets} "
                            f"have {present}")
        picked = picked[(picked.label == 0) | picked.generator.isin(selection.generators)]
    return picked


def group_keys(rows: pd.DataFrame, group_by: str) -> pd.Series:
    """What must not be split across training and test: a class folder (within its split;
    the source photo in the demo) or one image file."""
    return rows.sha256 if group_by == "image" else rows.split + "/" + rows.category


def _carve(groups: list, fraction: float, rng: np.random.Generator) -> set:
    """A seeded `fraction` of the groups (at least one, and never all of them)."""
    order = list(rng.permutation(groups))
    n = min(max(1, round(len(groups) * fraction)), len(groups) - 1)
    return set(order[:n])


def _carve_by_stratum(keys: pd.Series, strata: pd.Series, fraction: float, rng: np.random.Generator) -> set:
    """`_carve` within each stratum (a group's stratum: the first, in sorted order, of its rows'),
    so that every set and class with two groups or more keeps groups on both sides."""
    stratum_of = strata.groupby(keys.to_numpy()).min()
    carved = set()
    for _, groups in stratum_of.groupby(stratum_of, sort=True):
        if len(groups) > 1:
            carved |= _carve(sorted(groups.index), fraction, rng)
    return carved


def _check_classes(part: pd.DataFrame, n_classes: int, what: str, key: str) -> None:
    if part.target.nunique() < min(n_classes, 2):
        raise UserError(f"{key}: the {what} part has {len(part)} rows of {part.target.nunique()} class(es); "
                        f"a level needs examples of each class")


def level_data(rows: pd.DataFrame, level: Level, lp: LevelParams, split: GroupSplitParams, seed: int,
               key: str) -> LevelData:
    """Select a level's train, val and test rows. Groups (split.group_by) found in both the
    training and the test selection are split, seeded: test_fraction to test, the rest to
    training; a validation part, unless named, is carved from the training groups. No test
    row shows an image that training or validation saw."""
    rng = np.random.default_rng(seed)

    def rows_of(selection: Selection, part: str) -> pd.DataFrame:
        picked = select(rows, selection, f"{key}.{part}")
        used = picked[level.uses(picked, lp)]
        empty = sorted(set(selection.sets) - set(set_of(used)))
        if empty:
            raise UserError(f"{key}.{part}.sets: {empty} hold no row {level.name} uses ({level.question}); "
                            f"their fakes' families: {sorted(set(picked.family[(picked.label == 1) & set_of(picked).isin(empty)]))}")
        return used

    def strata(part: pd.DataFrame) -> pd.Series:
        return set_of(part) + "/" + level.class_of(part).astype(str)

    train, test = rows_of(lp.train, "train"), rows_of(lp.test, "test")
    g_train, g_test = group_keys(train, split.group_by), group_keys(test, split.group_by)
    shared = sorted(set(g_train) & set(g_test))
    if shared:
        if len(shared) < 2:
            raise UserError(f"attribution.split.group_by: {key}'s training and test sets share one group "
                            f"({shared[0]!r}) that cannot be split; use group_by: image or disjoint sets")
        in_shared = g_test.isin(shared)
        test_side = _carve_by_stratum(g_test[in_shared], strata(test[in_shared]), split.test_fraction, rng)
        train = train[~g_train.isin(test_side)]
        test = test[~g_test.isin(set(shared) - test_side)]
    if lp.val is None:
        g_train = group_keys(train, split.group_by)
        if g_train.nunique() < 2:
            raise UserError(f"{key}.val: the training rows form {g_train.nunique()} group(s), too few to carve a "
                            f"validation part; name val sets or use attribution.split.group_by: image")
        in_val = g_train.isin(_carve_by_stratum(g_train, strata(train), split.val_fraction, rng))
        train, val = train[~in_val], train[in_val]
    else:
        val = rows_of(lp.val, "val")
        overlap = set(group_keys(val, split.group_by)) & (set(group_keys(train, split.group_by)) | set(
            group_keys(test, split.group_by)))
        if overlap:
            raise UserError(f"{key}.val: shares {len(overlap)} group(s) with the training or test rows (e.g. "
                            f"{sorted(overlap)[0]!r}); leave val null to carve it from the training groups")
    val = val[~val.sha256.isin(set(train.sha256))]
    seen = set(train.sha256) | set(val.sha256)
    kept = test[~test.sha256.isin(seen)]
    classes = level.classes(train, lp)
    unknown = sorted(set(level.class_of(kept)) - set(classes))
    if unknown:
        raise UserError(f"{key}.test: classes {unknown} are not among the training classes {list(classes)}")
    missing = tuple(sorted(set(lp.test.sets) - set(set_of(kept))))
    if missing:
        log.warning("%s.test: set(s) %s have no test rows left once training and validation took theirs "
                    "(too few groups to split)", key, list(missing))
    data = LevelData(level, classes, level.targets(train, classes), level.targets(val, classes),
                     level.targets(kept, classes), test_rows_dropped=len(test) - len(kept),
                     sets_without_test_rows=missing)
    _check_classes(data.train, len(classes), "training", f"{key}.train")
    _check_classes(data.val, len(classes), "validation", f"{key}.val")
    if data.test.empty:
        raise UserError(f"{key}.test: no test rows left once the training images are set aside")
    return data


def enabled_levels(p: AttributionParams) -> list[str]:
    """The levels params turn on (a level section without `enabled` always runs)."""
    return [name for name in LEVELS if getattr(getattr(p, name), "enabled", True)]


def prepare(rows: pd.DataFrame, p: AttributionParams) -> dict[str, LevelData]:
    """Every enabled level's data, checked (set and generator names, leakage) before any training."""
    rows = rows[rows.status == "ok"]
    return {name: level_data(rows, LEVELS[name], getattr(p, name), p.split, p.seed, f"attribution.{name}")
            for name in enabled_levels(p)}


@dataclass
class HierarchyData:
    """Where the hierarchy is judged: rows with `target` among `classes`, and what was left out."""

    classes: tuple[str, ...]
    rows: pd.DataFrame
    left_out: dict


def hierarchy_rows(rows: pd.DataFrame, levels: dict[str, LevelData], p: AttributionParams) -> HierarchyData:
    """The rows of attribution.hierarchy.test (default: level 1's test rows) that no level trained or
    validated on (by group and by image), real or of a family level 2 names: where the whole
    hierarchy can be judged without leakage."""
    classes = hierarchy_classes(levels[HIERARCHY_LEVELS[1]].classes)
    if p.hierarchy.test is None:
        test = levels[HIERARCHY_LEVELS[0]].test
    else:
        test = select(rows[rows.status == "ok"], p.hierarchy.test, "attribution.hierarchy.test")
    used = pd.concat([d.used_for_training() for d in levels.values()])
    group_by = p.split.group_by
    unseen = ~group_keys(test, group_by).isin(set(group_keys(used, group_by))) & ~test.sha256.isin(set(used.sha256))
    judged = unseen & test.family.isin(classes)
    outside = test[unseen & ~judged]
    left_out = {"seen_in_training": int((~unseen).sum()),
                "family_not_in_hierarchy": {str(k): int(v) for k, v in outside.family.value_counts().sort_index().items()}}
    picked = test[judged]
    return HierarchyData(classes, picked.assign(target=picked.family.map({c: i for i, c in enumerate(classes)})
                                                .to_numpy()), left_out)

"""Which rows each level trains, validates and tests on (params `attribution.levelN`), split so
that no test row shows an image, or a group of images, that training saw."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fakedetect.attribution.levels import HIERARCHY_CLASSES, HIERARCHY_LEVELS, LEVELS, Level
from fakedetect.params import AttributionParams, GroupSplitParams, LevelParams, Selection
from fakedetect.stage import UserError


@dataclass
class LevelData:
    """One level's rows (manifest rows plus a `target` column), split without leakage."""

    level: Level
    classes: tuple[str, ...]
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    test_rows_dropped: int = 0  # test rows whose image was trained or validated on

    @property
    def name(self) -> str:
        return self.level.name

    def used_for_training(self) -> pd.DataFrame:
        return pd.concat([self.train, self.val])

    def split_counts(self) -> dict:
        def counts(part):
            return {c: int((part.target == i).sum()) for i, c in enumerate(self.classes)}

        return {"classes": list(self.classes), "train": counts(self.train), "val": counts(self.val),
                "test": counts(self.test), "test_rows_dropped_seen_in_training": self.test_rows_dropped}


def _set_names(rows: pd.DataFrame) -> list[str]:
    return sorted(set(rows.split[rows.split != "test"]) | set(rows.test_set[rows.split == "test"]))


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
        return picked[level.uses(picked)]

    train, test = rows_of(lp.train, "train"), rows_of(lp.test, "test")
    g_train, g_test = group_keys(train, split.group_by), group_keys(test, split.group_by)
    shared = sorted(set(g_train) & set(g_test))
    if shared:
        if len(shared) < 2:
            raise UserError(f"attribution.split.group_by: {key}'s training and test sets share one group "
                            f"({shared[0]!r}) that cannot be split; use group_by: image or disjoint sets")
        test_side = _carve(shared, split.test_fraction, rng)
        train = train[~g_train.isin(test_side)]
        test = test[~g_test.isin(set(shared) - test_side)]
    if lp.val is None:
        groups = sorted(set(group_keys(train, split.group_by)))
        if len(groups) < 2:
            raise UserError(f"{key}.val: the training rows form {len(groups)} group(s), too few to carve a "
                            f"validation part; name val sets or use attribution.split.group_by: image")
        in_val = group_keys(train, split.group_by).isin(_carve(groups, split.val_fraction, rng))
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
    classes = level.classes(train)
    unknown = sorted(set(level.class_of(kept)) - set(classes))
    if unknown:
        raise UserError(f"{key}.test: classes {unknown} are not among the training classes {list(classes)}")
    data = LevelData(level, classes, level.targets(train, classes), level.targets(val, classes),
                     level.targets(kept, classes), test_rows_dropped=len(test) - len(kept))
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


def hierarchy_rows(levels: dict[str, LevelData], group_by: str) -> pd.DataFrame:
    """Level 1's test rows that no level trained or validated on (by group and by image),
    real, GAN or diffusion: where the whole hierarchy can be judged without leakage. Their
    `target` is the class index among HIERARCHY_CLASSES."""
    test = levels[HIERARCHY_LEVELS[0]].test
    used = pd.concat([d.used_for_training() for d in levels.values()])
    unseen = ~group_keys(test, group_by).isin(set(group_keys(used, group_by))) & ~test.sha256.isin(set(used.sha256))
    rows = test[unseen & test.family.isin(HIERARCHY_CLASSES)]
    return rows.assign(target=rows.family.map({c: i for i, c in enumerate(HIERARCHY_CLASSES)}).to_numpy())

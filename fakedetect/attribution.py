"""Hierarchical attribution with a fine-tuned torchvision ResNet: level 1 tells real from
fake, level 2 tells a fake's family (GAN or diffusion), level 3 (optional) its generator.

This is the second part of the notebook project (ResNet-50, first layers frozen) and the
hierarchy of Level Up (Guarnera, Giudice, Battiato 2023, ResNet-34). Training follows
CNNDetection's recipe where the notebook is silent: Adam, lr 1e-4, early stopping on a
validation part.

Frozen stages keep their weights and their BatchNorm statistics. When the frozen stages
are the leading ones (stem, layer1, ...), their activations are computed once per image
and only the rest of the network is trained on them (`reuse_frozen`). Training crops are
aligned to the frozen prefix's stride, so that with and without the reuse the same crops
are drawn: cropping the cached activation map is then cropping the image, up to the
borders. Validation, test and inference see the whole preprocessed image.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torchvision
from PIL import Image
from torch import nn
from torch.fx.experimental.optimization import fuse
from tqdm import tqdm

from fakedetect.backbones import why_no_download
from fakedetect.metrics import set_metrics
from fakedetect.params import RESNET_STAGES, AttributionParams, GroupSplitParams, LevelParams, Selection
from fakedetect.stage import UserError

log = logging.getLogger("attribution")

# torchvision's ImageNet normalisation: the pretrained trunks expect it, a new one does not mind.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# Output stride of the network after each stage.
STAGE_STRIDE = {"stem": 4, "layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}
FAMILIES = ("gan", "diffusion")  # level 2's classes, in the order of its single logit (0, 1)
HIERARCHY = ("real", "gan", "diffusion")
LEVELS = ("level1", "level2", "level3")
MODEL_CARD = "model.json"  # beside the saved levels: what a predictor needs to rebuild them

# Published accuracies (%) shown beside each level's; each on its own data, so no deltas.
PUBLISHED = {"level1": {"notebook": 87.0, "level_up_above": 97.0},
             "level2": {"notebook": 93.0, "level_up_above": 97.0},
             "level3": {"level_up_above": 97.0}}
PUBLISHED_NOTE = ("notebook: the notebook project, ImageNet ResNet-50 with its first layers frozen, level 1 trained "
                  "on DALL-E + LAION and tested on Glide + LAION; level_up_above: Level Up (Guarnera et al. 2023), "
                  "ResNet-34, 'above 97% at each level' on its own 83k-image set")


# --------------------------------------------------------------------------- model


def load_trunk_weights(arch: str, weights: str, key: str = "attribution.weights") -> dict | None:
    """The state dict that `weights` names: torchvision's DEFAULT ImageNet weights for `arch`
    (from torch hub's cache, downloaded only when the network is there), a local file, or None.
    Fails at once, naming `key`, when they cannot be had."""
    if weights == "none":
        return None
    if weights == "imagenet":
        url = torchvision.models.get_model_weights(arch).DEFAULT.url
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        if not cached.is_file():
            why = why_no_download(url)
            if why:
                raise UserError(f"{key}: imagenet weights for {arch} are not in {cached.parent} and {why}; "
                                f"put {os.path.basename(url)} there, give a local state dict path, or use none")
        return torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True, weights_only=True)
    path = Path(weights)
    if not path.is_file():
        raise UserError(f"{key}: {weights!r} is neither imagenet, none, nor an existing file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: say which key points at it
        raise UserError(f"{key}: cannot load {path} as a state dict: {exc}") from None
    if not isinstance(state, dict):
        raise UserError(f"{key}: {path} holds a {type(state).__name__}, not a state dict")
    return state


def build_resnet(arch: str, n_outputs: int, trunk: dict | None = None, key: str = "attribution.weights") -> nn.Module:
    """A torchvision ResNet with a new `fc` head of n_outputs; the trunk (everything but fc)
    loaded from `trunk` when given. The caller seeds torch first: the head is random."""
    model = torchvision.models.get_model(arch, weights=None)
    model.fc = nn.Linear(model.fc.in_features, n_outputs)
    if trunk is not None:
        trunk = {k: v for k, v in trunk.items() if not k.startswith("fc.")}
        try:
            missing, unexpected = model.load_state_dict(trunk, strict=False)
        except RuntimeError as exc:  # shapes that differ
            raise UserError(f"{key}: the weights do not fit {arch}: {str(exc).splitlines()[1].strip()}") from None
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise UserError(f"{key}: the weights do not fit {arch}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model


def stage_modules(model: nn.Module, name: str) -> list[nn.Module]:
    """The modules of one stage of a torchvision ResNet (stem = conv1, bn1, relu, maxpool)."""
    if name == "stem":
        return [model.conv1, model.bn1, model.relu, model.maxpool]
    return [getattr(model, name)]


def frozen_prefix(freeze: list[str]) -> int:
    """How many leading stages are frozen: the part whose activations can be computed once."""
    n = 0
    while n < len(RESNET_STAGES) and RESNET_STAGES[n] in freeze:
        n += 1
    return n


def prefix_stride(start: int) -> int:
    """Image pixels per cell of the activations after the first `start` stages (1: the image)."""
    return STAGE_STRIDE[RESNET_STAGES[start - 1]] if start else 1


def freeze_stages(model: nn.Module, freeze: list[str]) -> list[nn.Module]:
    """Stop gradients into the frozen stages; return their modules (kept in eval mode in training)."""
    modules = [m for name in freeze for m in stage_modules(model, name)]
    for m in modules:
        m.requires_grad_(False)
    return modules


def forward_from(model: nn.Module, x: torch.Tensor, start: int) -> torch.Tensor:
    """Run the network from stage index `start` (0 = the image) to the head's logits."""
    for name in RESNET_STAGES[start:]:
        for m in stage_modules(model, name):
            x = m(x)
    return model.fc(torch.flatten(model.avgpool(x), 1))


# ---------------------------------------------------------------------------- data


@dataclass
class LevelData:
    """One level's rows (manifest rows plus a `target` column), split without leakage."""

    name: str
    classes: tuple[str, ...]
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    test_rows_dropped: int = 0  # test rows whose image was trained or validated on

    def used_for_training(self) -> pd.DataFrame:
        return pd.concat([self.train, self.val])


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


def _targets(rows: pd.DataFrame, level: str, classes: tuple[str, ...]) -> pd.DataFrame:
    if level == "level1":
        target = rows.label
    elif level == "level2":
        target = (rows.family == "diffusion").astype("int64")
    else:
        target = rows.generator.map({g: i for i, g in enumerate(classes)})
    return rows.assign(target=target.to_numpy())


def _level_rows(rows: pd.DataFrame, level: str) -> pd.DataFrame:
    """Level 1 sees everything; level 2 only GAN and diffusion fakes; level 3 only fakes."""
    if level == "level1":
        return rows
    fakes = rows[rows.label == 1]
    return fakes[fakes.family.isin(FAMILIES)] if level == "level2" else fakes


def _check_classes(part: pd.DataFrame, n_classes: int, what: str, key: str) -> None:
    if part.target.nunique() < min(n_classes, 2):
        raise UserError(f"{key}: the {what} part has {len(part)} rows of {part.target.nunique()} class(es); "
                        f"a level needs examples of each class")


def level_data(rows: pd.DataFrame, level: str, lp: LevelParams, split: GroupSplitParams, seed: int,
               key: str) -> LevelData:
    """Select a level's train, val and test rows. Groups (split.group_by) found in both the
    training and the test selection are split, seeded: test_fraction to test, the rest to
    training; a validation part, unless named, is carved from the training groups. No test
    row shows an image that training or validation saw."""
    rng = np.random.default_rng(seed)
    train = _level_rows(select(rows, lp.train, f"{key}.train"), level)
    test = _level_rows(select(rows, lp.test, f"{key}.test"), level)
    g_train, g_test = group_keys(train, split.group_by), group_keys(test, split.group_by)
    shared = sorted(set(g_train) & set(g_test))
    if shared:
        if len(shared) < 2:
            raise UserError(f"attribution.split.group_by: {key}'s training and test sets share one group "
                            f"({shared[0]!r}) that cannot be split; use group_by: image or disjoint sets")
        order = list(rng.permutation(shared))
        n_test = min(max(1, round(len(shared) * split.test_fraction)), len(shared) - 1)
        test_side = set(order[:n_test])
        train = train[~g_train.isin(test_side)]
        test = test[~g_test.isin(set(shared) - test_side)]
    if lp.val is None:
        groups = sorted(set(group_keys(train, split.group_by)))
        if len(groups) < 2:
            raise UserError(f"{key}.val: the training rows form {len(groups)} group(s), too few to carve a "
                            f"validation part; name val sets or use attribution.split.group_by: image")
        order = list(rng.permutation(groups))
        n_val = min(max(1, round(len(groups) * split.val_fraction)), len(groups) - 1)
        in_val = group_keys(train, split.group_by).isin(set(order[:n_val]))
        train, val = train[~in_val], train[in_val]
    else:
        val = _level_rows(select(rows, lp.val, f"{key}.val"), level)
        overlap = set(group_keys(val, split.group_by)) & (set(group_keys(train, split.group_by)) | set(
            group_keys(test, split.group_by)))
        if overlap:
            raise UserError(f"{key}.val: shares {len(overlap)} group(s) with the training or test rows (e.g. "
                            f"{sorted(overlap)[0]!r}); leave val null to carve it from the training groups")
    val = val[~val.sha256.isin(set(train.sha256))]
    seen = set(train.sha256) | set(val.sha256)
    kept = test[~test.sha256.isin(seen)]
    classes = {"level1": ("real", "fake"), "level2": FAMILIES}.get(level) or tuple(sorted(set(train.generator)))
    if level == "level3":
        extra = sorted(set(kept.generator) - set(classes))
        if extra:
            raise UserError(f"{key}.test.generators: {extra} are not among the training generators {list(classes)}")
    data = LevelData(level, classes, _targets(train, level, classes), _targets(val, level, classes),
                     _targets(kept, level, classes), test_rows_dropped=len(test) - len(kept))
    _check_classes(data.train, len(classes), "training", f"{key}.train")
    _check_classes(data.val, len(classes), "validation", f"{key}.val")
    if data.test.empty:
        raise UserError(f"{key}.test: no test rows left once the training images are set aside")
    return data


def hierarchy_rows(levels: dict[str, LevelData], group_by: str) -> pd.DataFrame:
    """Level 1's test rows that no level trained or validated on (by group and by image),
    real, GAN or diffusion: where the whole hierarchy can be judged without leakage."""
    test = levels["level1"].test
    used = pd.concat([d.used_for_training() for d in levels.values()])
    unseen = ~group_keys(test, group_by).isin(set(group_keys(used, group_by))) & ~test.sha256.isin(set(used.sha256))
    return test[unseen & test.family.isin(HIERARCHY)]


class ImageBank:
    """Every preprocessed image the levels use, decoded once into memory (N x 3 x H x W uint8)."""

    def __init__(self, paths: list[str]):
        self.paths = sorted(set(paths))
        self.position = {p: i for i, p in enumerate(self.paths)}
        first = self._read(self.paths[0])
        self.pixels = torch.empty((len(self.paths), *first.shape), dtype=torch.uint8)
        for i, path in enumerate(tqdm(self.paths, desc="load images", unit="img", mininterval=2)):
            image = self._read(path)
            if image.shape != first.shape:
                raise UserError(f"{path} is {tuple(image.shape)}, not {tuple(first.shape)} like the others: "
                                f"rerun the preprocess stage")
            self.pixels[i] = image

    @staticmethod
    def _read(path: str) -> torch.Tensor:
        with Image.open(path) as im:
            return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)

    def index(self, paths) -> torch.Tensor:
        return torch.tensor([self.position[p] for p in paths], dtype=torch.long)


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (pixels.float() / 255.0 - mean) / std


# ------------------------------------------------------------------------ training


@dataclass
class Inputs:
    """Where a level's network starts: the images, or the cached activations of its frozen prefix."""

    bank: ImageBank
    start: int = 0  # stage index the network runs from
    activations: torch.Tensor | None = None  # bank-aligned, when start > 0

    def full(self, idx: torch.Tensor) -> torch.Tensor:
        return self.activations[idx] if self.activations is not None else normalize(self.bank.pixels[idx])

    def crops(self, idx: torch.Tensor, crop_px: int | None, align: int, gen: torch.Generator) -> torch.Tensor:
        """Random crops of crop_px pixels at offsets that are multiples of `align` pixels."""
        x = self.full(idx)
        if crop_px is None:
            return x
        scale = prefix_stride(self.start)  # pixels per cell of x
        side_px = x.shape[-1] * scale
        positions = (side_px - crop_px) // align + 1
        offsets = torch.randint(positions, (len(idx), 2), generator=gen) * align // scale
        size = crop_px // scale
        return torch.stack([x[i, :, oy:oy + size, ox:ox + size] for i, (oy, ox) in enumerate(offsets.tolist())])


def cache_prefix(model: nn.Module, bank: ImageBank, start: int, batch_size: int) -> torch.Tensor:
    """The frozen prefix's activations for every image of the bank, computed once."""
    model.eval()
    chunks = []
    with torch.no_grad():
        for lo in tqdm(range(0, len(bank.paths), batch_size), desc="frozen trunk", unit="batch", mininterval=2):
            x = normalize(bank.pixels[lo:lo + batch_size])
            for name in RESNET_STAGES[:start]:
                for m in stage_modules(model, name):
                    x = m(x)
            chunks.append(x)
    return torch.cat(chunks)


def _loss(logits: torch.Tensor, target: torch.Tensor, class_weight: torch.Tensor) -> torch.Tensor:
    """BCE on one logit (two classes) or cross-entropy, each class weighted by class_weight."""
    if logits.shape[1] == 1:
        per_row = nn.functional.binary_cross_entropy_with_logits(logits[:, 0], target.float(), reduction="none")
    else:
        per_row = nn.functional.cross_entropy(logits, target, reduction="none")
    w = class_weight[target]
    return (per_row * w).sum() / w.sum()


def load_level(models_dir: str | os.PathLike, level: str) -> tuple[nn.Module, list[str]]:
    """A trained level's network (weights only, never unpickled) and its classes, rebuilt from
    the model card the stage wrote beside it, prepared for inference: BatchNorm folded into the
    convolutions and channels-last memory, about 1.8x faster on the CPU; its logits differ
    from the unfolded network's by float rounding only (~1e-5)."""
    card = json.loads((Path(models_dir) / MODEL_CARD).read_text())
    entry = card["levels"][level]
    state = torch.load(Path(models_dir) / entry["file"], map_location="cpu", weights_only=True)
    model = build_resnet(card["arch"], entry["outputs"])
    model.load_state_dict(state)
    return fuse(model.eval()).to(memory_format=torch.channels_last), entry["classes"]


def class_probabilities(model: nn.Module, pixels: torch.Tensor) -> np.ndarray:
    """Per image (uint8, N x 3 x H x W, whole preprocessed images), the probability of each
    class: a single logit gives [P(class 0), P(class 1)]."""
    with torch.inference_mode():
        logits = model(normalize(pixels).contiguous(memory_format=torch.channels_last))
    if logits.shape[1] == 1:
        p1 = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - p1, p1], dim=1).numpy()
    return torch.softmax(logits, dim=1).numpy()


def predicted_class(logits: torch.Tensor) -> torch.Tensor:
    return (logits[:, 0] >= 0).long() if logits.shape[1] == 1 else logits.argmax(1)


def predict(model: nn.Module, inputs: Inputs, idx: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits for whole images (bank indices), in eval mode."""
    model.eval()
    out = []
    with torch.no_grad():
        for lo in range(0, len(idx), batch_size):
            out.append(forward_from(model, inputs.full(idx[lo:lo + batch_size]), inputs.start))
    return torch.cat(out) if out else torch.empty((0, model.fc.out_features))


def class_weights(target: np.ndarray, n_classes: int, balance: bool) -> torch.Tensor:
    if not balance:
        return torch.ones(n_classes)
    counts = np.bincount(target, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


@dataclass
class Trained:
    model: nn.Module
    history: pd.DataFrame  # one row per epoch
    best_epoch: int
    images_per_s: float = 0.0  # training throughput (logged, never in metrics)


def train_level(model: nn.Module, data: LevelData, inputs: Inputs, p: AttributionParams, frozen: list[nn.Module],
                steps: int | None = None) -> Trained:
    """Adam on the unfrozen parameters, class-weighted loss, early stopping with patience on the
    validation accuracy (CNNDetection's criterion; balanced over classes, as level 2 and 3 are
    not); the best epoch's weights are kept. `steps` (benchmarks) stops after that many
    batches of the first epoch."""
    torch.manual_seed(p.seed)
    gen = torch.Generator().manual_seed(p.seed)
    n_classes = len(data.classes)
    train_idx = inputs.bank.index(data.train.image)
    train_target = torch.tensor(data.train.target.to_numpy(), dtype=torch.long)
    val_idx = inputs.bank.index(data.val.image)
    val_target = torch.tensor(data.val.target.to_numpy(), dtype=torch.long)
    weight = class_weights(data.train.target.to_numpy(), n_classes, p.class_balance)
    trainable = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=p.lr)
    align = prefix_stride(frozen_prefix(p.freeze))  # the same crops with and without reuse_frozen
    samples = len(train_idx) * p.crops_per_image
    used = samples // p.batch_size * p.batch_size or samples  # whole batches: BatchNorm needs > 1
    batches = (used + p.batch_size - 1) // p.batch_size
    best, best_epoch, best_state, history = -1.0, 0, None, []
    bar = tqdm(total=steps or p.max_epochs * batches, desc=data.name, unit="batch", mininterval=2)
    seen, seconds = 0, 0.0
    for epoch in range(1, p.max_epochs + 1):
        model.train()
        for m in frozen:
            m.eval()
        order = torch.randperm(samples, generator=gen) % len(train_idx)
        loss_sum, correct = 0.0, 0
        for lo in range(0, used, p.batch_size):
            start = time.perf_counter()
            batch = order[lo:lo + p.batch_size]
            x = inputs.crops(train_idx[batch], p.crop_size, align, gen)
            logits = forward_from(model, x, inputs.start)
            loss = _loss(logits, train_target[batch], weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seconds += time.perf_counter() - start
            seen += len(batch)
            loss_sum += loss.item() * len(batch)
            correct += int((predicted_class(logits.detach()) == train_target[batch]).sum())
            bar.update()
            if steps is not None and bar.n >= steps:
                bar.close()
                return Trained(model, pd.DataFrame(history), 0, seen / max(seconds, 1e-9))
        val_logits = predict(model, inputs, val_idx, p.batch_size)
        val_loss = _loss(val_logits, val_target, weight).item()
        val_pred = predicted_class(val_logits)
        val_acc = float((val_pred == val_target).float().mean())
        val_balanced = float(np.mean([(val_pred[val_target == c] == c).float().mean() for c in val_target.unique()]))
        history.append({"epoch": epoch, "train_loss": loss_sum / used, "train_accuracy": correct / used,
                        "val_loss": val_loss, "val_accuracy": val_acc, "val_balanced_accuracy": val_balanced})
        bar.set_postfix(epoch=epoch, val_loss=f"{val_loss:.3f}", val_bal_acc=f"{val_balanced:.3f}")
        log.info("%s epoch %d: train loss %.4f acc %.3f, val loss %.4f acc %.3f balanced %.3f", data.name, epoch,
                 history[-1]["train_loss"], history[-1]["train_accuracy"], val_loss, val_acc, val_balanced)
        if val_balanced > best:
            best, best_epoch, best_state = val_balanced, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= p.patience:
            break
    bar.close()
    model.load_state_dict(best_state)
    frame = pd.DataFrame(history).round(6)
    frame["best"] = frame.epoch == best_epoch
    return Trained(model, frame, best_epoch, seen / max(seconds, 1e-9))


# ------------------------------------------------------------------------- metrics


def _acc(truth: np.ndarray, pred: np.ndarray) -> float | None:
    """Accuracy in percent, as metrics.set_metrics writes it; None for no rows."""
    return round(100.0 * float(np.mean(truth == pred)), 4) if len(truth) else None


def confusion(truth: np.ndarray, pred: np.ndarray, n: int) -> list[list[int]]:
    """Counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (truth, pred), 1)
    return matrix.tolist()


def _per(rows: pd.DataFrame, column: str) -> dict:
    """Accuracy of the rows' `pred` against `target`, per value of `column`."""
    return {str(name): {"n": len(group), "acc": _acc(group.target.to_numpy(), group.pred.to_numpy())}
            for name, group in rows.groupby(column, sort=True)}


def level1_report(rows: pd.DataFrame, score: np.ndarray, pred: np.ndarray) -> dict:
    """Real vs fake as the detection stages report it (acc, real_acc, fake_acc, AP, ...),
    overall, per test set and per generator."""
    rows = rows.assign(score=score, pred=pred)
    per_set = {str(name): set_metrics(g.target.to_numpy(), g.score.to_numpy(), g.pred.to_numpy())
               for name, g in rows.groupby("test_set", sort=True)}
    return {**set_metrics(rows.target.to_numpy(), score, pred), "classes": ["real", "fake"],
            "per_test_set": per_set, "per_generator": _per(rows, "generator"),
            "confusion": confusion(rows.target.to_numpy(), pred, 2)}


def multiclass_report(rows: pd.DataFrame, pred: np.ndarray, classes: tuple[str, ...], by: str) -> dict:
    """Accuracy, balanced accuracy, accuracy per true class (`per_<by>`), per generator and per
    test set, and the confusion matrix of a decision among `classes`."""
    rows = rows.assign(pred=pred)
    truth = rows.target.to_numpy()
    per_class = {c: {"n": int((truth == i).sum()), "acc": _acc(truth[truth == i], pred[truth == i])}
                 for i, c in enumerate(classes)}
    present = [v["acc"] for v in per_class.values() if v["acc"] is not None]
    return {"n": len(rows), "classes": list(classes), "acc": _acc(truth, pred),
            "balanced_acc": round(float(np.mean(present)), 4) if present else None,
            f"per_{by}": per_class, "per_generator": _per(rows, "generator"), "per_test_set": _per(rows, "test_set"),
            "confusion": confusion(truth, pred, len(classes))}


def hierarchy_decision(l1_pred: np.ndarray, l2_pred: np.ndarray) -> np.ndarray:
    """real (0) when level 1 says real, else 1 + level 2's family (1 GAN, 2 diffusion)."""
    return np.where(l1_pred == 0, 0, 1 + l2_pred)


def split_counts(data: LevelData) -> dict:
    def counts(part):
        return {c: int((part.target == i).sum()) for i, c in enumerate(data.classes)}

    return {"classes": list(data.classes), "train": counts(data.train), "val": counts(data.val),
            "test": counts(data.test), "test_rows_dropped_seen_in_training": data.test_rows_dropped}


def confusion_rows(truth: np.ndarray, pred: np.ndarray, classes: tuple[str, ...]) -> pd.DataFrame:
    """One row per test image (actual, predicted class names): DVC's confusion template."""
    names = np.array(classes)
    return pd.DataFrame({"actual": names[truth], "predicted": names[pred]})


# ----------------------------------------------------------------------------- run


@dataclass
class Result:
    metrics: dict
    models: dict[str, dict] = field(default_factory=dict)  # level -> state dict
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)
    confusions: dict[str, pd.DataFrame] = field(default_factory=dict)  # level/hierarchy -> actual, predicted
    card: dict = field(default_factory=dict)  # what a predictor needs to rebuild the models
    images_per_s: dict[str, float] = field(default_factory=dict)


def enabled_levels(p: AttributionParams) -> list[str]:
    return ["level1", "level2"] + (["level3"] if p.level3.enabled else [])


def prepare(rows: pd.DataFrame, p: AttributionParams) -> dict[str, LevelData]:
    """Every enabled level's data, checked (set and generator names, leakage) before any training."""
    rows = rows[rows.status == "ok"]
    return {level: level_data(rows, level, getattr(p, level), p.split, p.seed, f"attribution.{level}")
            for level in enabled_levels(p)}


def new_model(p: AttributionParams, n_classes: int, trunk: dict | None) -> tuple[nn.Module, list[nn.Module]]:
    """A seeded ResNet for one level, its frozen stages frozen."""
    torch.manual_seed(p.seed)
    model = build_resnet(p.arch, 1 if n_classes == 2 else n_classes, trunk)
    return model, freeze_stages(model, p.freeze)


def make_inputs(model: nn.Module, bank: ImageBank, p: AttributionParams,
                cache: dict[bytes, torch.Tensor]) -> Inputs:
    """Inputs from the cached frozen prefix when reuse is on (one cache per distinct prefix
    weights: every level shares it when they start from the same trunk), else from pixels."""
    start = frozen_prefix(p.freeze) if p.reuse_frozen else 0
    if not start:
        return Inputs(bank)
    prefix = [m for name in RESNET_STAGES[:start] for m in stage_modules(model, name)]
    fingerprint = b"".join(t.numpy().tobytes() for m in prefix for t in m.state_dict().values())
    if fingerprint not in cache:
        cache[fingerprint] = cache_prefix(model, bank, start, p.batch_size)
        log.info("frozen trunk cached: %s activations, %.0f MiB", tuple(cache[fingerprint].shape),
                 cache[fingerprint].numel() * 4 / 2**20)
    return Inputs(bank, start, cache[fingerprint])


def run(rows: pd.DataFrame, p: AttributionParams, trunk: dict | None) -> Result:
    """Train every level, judge each on its test rows and the hierarchy on the rows no level saw."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(p.threads)
    levels = prepare(rows, p)
    hierarchy = hierarchy_rows(levels, p.split.group_by)
    bank = ImageBank([*pd.concat([d.used_for_training() for d in levels.values()]).image,
                      *pd.concat([d.test for d in levels.values()]).image, *hierarchy.image])
    cache: dict[bytes, torch.Tensor] = {}
    result = Result(metrics={"model": {"arch": p.arch, "weights": p.weights, "frozen": list(p.freeze),
                                       "reuse_frozen": p.reuse_frozen, "crop_size": p.crop_size},
                             "published_note": PUBLISHED_NOTE})
    trained, inputs, level_cards = {}, {}, {}
    for level, data in levels.items():
        model, frozen = new_model(p, len(data.classes), trunk)
        inputs[level] = make_inputs(model, bank, p, cache)
        t = train_level(model, data, inputs[level], p, frozen)
        trained[level] = t.model
        result.histories[level] = t.history
        result.models[level] = t.model.state_dict()
        result.images_per_s[level] = t.images_per_s
        logits = predict(t.model, inputs[level], bank.index(data.test.image), p.batch_size)
        pred = predicted_class(logits).numpy()
        truth = data.test.target.to_numpy()
        if level == "level1":
            report = level1_report(data.test, torch.sigmoid(logits[:, 0]).numpy(), pred)
        elif level == "level2":
            report = multiclass_report(data.test, pred, data.classes, "family")
            report["ap_diffusion"] = set_metrics(truth, logits[:, 0].numpy(), pred)["ap"]
        else:
            report = multiclass_report(data.test, pred, data.classes, "class")
        result.metrics[level] = {**report, "published_acc": PUBLISHED[level], "data": split_counts(data),
                                 "epochs_run": len(t.history), "best_epoch": t.best_epoch}
        result.confusions[level] = confusion_rows(truth, pred, data.classes)
        level_cards[level] = {"file": f"{level}.pt", "classes": list(data.classes), "outputs": model.fc.out_features}
    if "level3" not in levels:
        result.metrics["level3"] = None
    idx = bank.index(hierarchy.image)
    l1 = predicted_class(predict(trained["level1"], inputs["level1"], idx, p.batch_size)).numpy()
    l2 = predicted_class(predict(trained["level2"], inputs["level2"], idx, p.batch_size)).numpy()
    decision = hierarchy_decision(l1, l2)
    truth = hierarchy.family.map({c: i for i, c in enumerate(HIERARCHY)}).to_numpy()
    h = hierarchy.assign(target=truth)
    result.metrics["hierarchy"] = multiclass_report(h, decision, HIERARCHY, "class")
    result.confusions["hierarchy"] = confusion_rows(truth, decision, HIERARCHY)
    result.card = {"arch": p.arch, "mean": list(MEAN), "std": list(STD), "levels": level_cards,
                   "input": "a preprocessed RGB image (whole, as the preprocess stage writes it), uint8 / 255, "
                            "normalised by mean and std",
                   "hierarchy": "level1 fake (logit >= 0) -> level2: gan (logit < 0) or diffusion"}
    return result

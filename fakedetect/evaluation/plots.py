"""Pictures the stages write (matplotlib, Agg backend: no display needed), and curve data for `dvc plots`."""
from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from fakedetect import atomic  # noqa: E402


def save(fig, path: str) -> None:
    """Save a figure atomically and close it."""
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def before_after(examples: list[tuple[np.ndarray, np.ndarray, str]], path: str, title: str) -> None:
    """One column per example: the original on top, the preprocessed image below, captioned."""
    n = max(len(examples), 1)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.6), squeeze=False)
    for col, (before, after, caption) in enumerate(examples):
        axes[0, col].imshow(before)
        axes[0, col].set_title(f"{before.shape[1]}x{before.shape[0]}", fontsize=8)
        axes[1, col].imshow(after)
        axes[1, col].set_title(caption, fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].text(-0.1, 0.5, "before", transform=axes[0, 0].transAxes, rotation=90, va="center", ha="right")
    axes[1, 0].text(-0.1, 0.5, "after", transform=axes[1, 0].transAxes, rotation=90, va="center", ha="right")
    fig.suptitle(title)
    save(fig, path)


MARKERS = "osD^vP*X<>hp"
CLASS_COLOURS = {0: "tab:blue", 1: "tab:red"}


def tsne_scatter(coords: np.ndarray, labels: np.ndarray, generators: np.ndarray, path: str, title: str) -> None:
    """A 2-D map: real vs fake by colour, generator by marker (cycled past 12), one legend entry each."""
    fig, ax = plt.subplots(figsize=(8, 7))
    groups = sorted(set(zip(labels.tolist(), generators.tolist())))
    for i, (label, generator) in enumerate(groups):
        mask = (labels == label) & (generators == generator)
        ax.scatter(coords[mask, 0], coords[mask, 1], s=9, alpha=0.6, linewidths=0, c=CLASS_COLOURS[label],
                   marker=MARKERS[i % len(MARKERS)], label=f"{generator} ({'fake' if label else 'real'}, {mask.sum()})")
    ax.legend(fontsize=8, markerscale=2, loc="best", framealpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    save(fig, path)


def save_curves(folder: str, rows: pd.DataFrame, scores: np.ndarray) -> list[str]:
    """ROC and precision-recall points per test set, as CSV for `dvc plots`: <folder>/{roc,pr}/<set>.csv.

    `rows` (split, test_set, label) are aligned with `scores`; only test rows count. A test set
    with one class has no curves; the names of those skipped are returned.
    """
    folder = Path(folder)
    for kind in ("roc", "pr"):
        shutil.rmtree(folder / kind, ignore_errors=True)  # no curves left over from renamed test sets
    skipped = []
    test = (rows.split == "test").to_numpy()
    for name in sorted(rows.test_set[test].unique()):
        mask = test & (rows.test_set == name).to_numpy()
        labels, set_scores = rows.label.to_numpy()[mask], np.asarray(scores)[mask]
        if len(np.unique(labels)) < 2:
            skipped.append(name)
            continue
        fpr, tpr, _ = roc_curve(labels, set_scores)
        precision, recall, _ = precision_recall_curve(labels, set_scores)
        atomic.write_csv(folder / "roc" / f"{name}.csv",
                         pd.DataFrame({"fpr": fpr, "tpr": tpr}).round(6))
        atomic.write_csv(folder / "pr" / f"{name}.csv",
                         pd.DataFrame({"recall": recall, "precision": precision}).round(6))
    return skipped


def accuracy_vs_published(reports: dict[str, dict], path: str) -> None:
    """Grouped bars per test set: our accuracy for each method, and hatched beside it the accuracy
    published for that method on a set of that name, where there is one."""
    sets = sorted({name for report in reports.values() for name in report["test_sets"]}) + ["mean"]
    slots = [(label, which) for label in reports for which in ("ours", "published")]
    width = 0.8 / len(slots)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(sets) * len(reports)), 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for slot, (label, which) in enumerate(slots):
        report = reports[label]
        colour = colours[list(reports).index(label) % len(colours)]
        rows = [report["mean"] if name == "mean" else report["test_sets"].get(name, {}) for name in sets]
        key = "acc" if which == "ours" else "published_acc"
        values = [row.get(key) for row in rows]
        x = [i - 0.4 + (slot + 0.5) * width for i, value in enumerate(values) if value is not None]
        heights = [value for value in values if value is not None]
        if not heights:
            continue
        style = {"color": colour} if which == "ours" else {"facecolor": "white", "edgecolor": colour, "hatch": "//"}
        bars = ax.bar(x, heights, width, label=f"{label}, {which}", **style)
        ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
    ax.axhline(50, color="gray", linewidth=0.8, linestyle=":")
    ax.set_xticks(range(len(sets)), sets, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy % (threshold 0.5 / vote)")
    ax.set_title("accuracy per test set against the published numbers of the same method")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save(fig, path)


def confusion_matrices(matrices: dict[str, tuple[list[str], list[list[int]]]], path: str, title: str) -> None:
    """One panel per decision: counts, rows = true class, columns = predicted class."""
    save(confusion_figure(matrices, title), path)


def confusion_figure(matrices: dict[str, tuple[list[str], list[list[int]]]], title: str):
    """The panels of `confusion_matrices`, laid out (constrained) so that one panel's class names
    never run into the next panel, however long they are."""
    n = max(len(matrices), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False, layout="constrained")
    for ax, (name, (classes, matrix)) in zip(axes[0], matrices.items()):
        counts = np.asarray(matrix)
        ax.imshow(counts, cmap="Blues")
        for (i, j), value in np.ndenumerate(counts):
            ax.text(j, i, str(value), ha="center", va="center",
                    color="white" if value > counts.max() / 2 else "black", fontsize=8)
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name, fontsize=9)
    fig.suptitle(title)
    return fig


def robustness_summary(methods: dict[str, dict], tables: dict[str, dict[str, pd.DataFrame]], path: str) -> None:
    """One row per method: mean accuracy and AP against JPEG quality and against blur sigma (clean
    first), and both at every grid point (resizing and combinations included)."""
    fig, axes = plt.subplots(len(methods), 3, figsize=(15, 3.6 * len(methods)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1.6]})
    for row, (key, method) in zip(axes, methods.items()):
        for ax, (curve, table) in zip(row, tables[key].items()):
            mean = table[table.test_set == "mean"]
            x = mean.iloc[:, 0].tolist()
            ax.plot(x, mean.acc.tolist(), marker="o", label="accuracy")
            ax.plot(x, mean.ap.tolist(), marker="s", linestyle="--", label="AP")
            ax.set_xlabel(table.columns[0].replace("_", " "))
            ax.set_title(f"{method['name']}: mean over sets vs {curve}", fontsize=9)
        points = method["perturbations"]
        names = list(points)
        positions = np.arange(len(names))
        for offset, metric, label in ((-0.2, "acc", "accuracy"), (0.2, "ap", "AP")):
            values = [points[name]["mean"][metric] for name in names]
            row[2].bar(positions + offset, [np.nan if v is None else v for v in values], 0.4, label=label)
        row[2].set_xticks(positions, names, rotation=35, ha="right", fontsize=7)
        row[2].set_title(f"{method['name']}: mean over sets at every grid point", fontsize=9)
        for ax in row:
            ax.set_ylim(0, 105)
            ax.axhline(50, color="gray", linewidth=0.8, linestyle=":")
            ax.set_ylabel("%")
            ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("robustness: perturbed test images, thresholds from the clean validation split")
    fig.tight_layout()
    save(fig, path)

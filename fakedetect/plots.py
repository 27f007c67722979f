"""Pictures the stages write (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

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


def confusion_matrices(matrices: dict[str, tuple[list[str], list[list[int]]]], path: str, title: str) -> None:
    """One panel per decision: counts, rows = true class, columns = predicted class."""
    n = max(len(matrices), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False)
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
    save(fig, path)

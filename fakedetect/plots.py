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

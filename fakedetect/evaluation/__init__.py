"""Evaluation: metrics, robustness, t-SNE, plots, published numbers."""

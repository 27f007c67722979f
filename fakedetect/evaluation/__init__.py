"""Evaluation: metrics, perturbations, robustness, t-SNE, plots, published numbers."""

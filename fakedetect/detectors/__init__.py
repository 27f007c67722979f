"""Detectors: the classifiers and heads on features, their thresholds, the one scoring path."""

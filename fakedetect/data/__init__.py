"""Data: image decoding, dataset layouts, the manifest, the demo set, preprocessing, perturbations."""

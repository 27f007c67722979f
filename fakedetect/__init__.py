"""fakedetect: the library behind the stages of the fake-image detection pipeline.

One module per concern: params (the schema), layouts (dataset folders -> manifest),
images (safe decoding), demo (the offline demo set), augment (preprocessing protocols),
backbones/extract/featurestore/features (image features), neighbours, classifiers,
metrics, attribution, plots, predict and cli (scoring new images), atomic (crash-safe
writes), stage (what every stage script shares).
"""
import sys

# Importing triton (pulled in by torchvision and open_clip) after TensorFlow segfaults
# (DESIGN §8). triton only compiles GPU kernels, which this package never asks for: when
# TensorFlow is already loaded, keep triton out so that torchvision and open_clip still import.
if "tensorflow" in sys.modules and "triton" not in sys.modules:
    sys.modules["triton"] = None

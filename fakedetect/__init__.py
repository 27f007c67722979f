"""fakedetect: the library behind the stages of the fake-image detection pipeline.

One module per concern; docs/architecture.md "The module map" lists them.
"""
import sys


def keep_triton_out_after_tensorflow() -> None:
    """Importing triton (pulled in by torchvision and open_clip) after TensorFlow segfaults
    (docs/architecture.md "Environment facts worth knowing"). triton only compiles GPU kernels, which this
    package never asks for: once TensorFlow is loaded, keep triton out so that torchvision and open_clip
    still import. Called here (TensorFlow loaded before this package) and where Keras loads."""
    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        sys.modules["triton"] = None


keep_triton_out_after_tensorflow()

"""Import torch before anything can import TensorFlow: the reverse order segfaults (DESIGN §8)."""
import torch  # noqa: F401

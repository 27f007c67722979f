"""Import torch before anything can import TensorFlow: the reverse order segfaults (README "Environment facts worth knowing")."""
import torch  # noqa: F401

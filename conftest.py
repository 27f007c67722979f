"""Import torch before anything can import TensorFlow: the reverse order segfaults (docs/architecture.md "Environment facts worth knowing")."""
import torch  # noqa: F401

"""What a run depends on beyond params: weights files, downloads, CPU numerics, logs."""

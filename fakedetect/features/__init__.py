"""Features: backbones, the local and Ray engines, extraction, the feature store, feature files."""

"""Base models: resolving `base_model.name` to a local sentence-transformers folder, offline by default."""

"""The 13 benchmarks: a declarative registry, their loaders, and the scorers."""

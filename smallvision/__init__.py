"""smallvision: a reproducible benchmark of small-data image classification."""

__version__ = "0.1.0"

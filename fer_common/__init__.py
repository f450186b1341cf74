"""fer-replicate: shared library for replicating facial-emotion-recognition papers."""

__version__ = "0.1.0"

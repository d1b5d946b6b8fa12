"""baseforge: declarative, reproducible Linux base container images."""

__version__ = "0.1.0"

"""The package's version (one place, read by the package, the CLI and the generators)."""

__version__ = "0.1.0"

"""The package version, importable without importing the SDK."""

__version__ = "0.1.0"

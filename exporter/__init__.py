"""Prometheus exporter for Genesys Cloud CX contact centres."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("genesys-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

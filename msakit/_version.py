"""The release of msakit (recorded in every run and feature sidecar)."""

__version__ = "0.1.0"

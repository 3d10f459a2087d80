"""``msakit serve``: one trained run behind a page and an HTTP API (needs ``msakit[serve]``).

Importing this package is cheap: FastAPI loads in ``create_app``, the extraction libraries only
in the worker processes.
"""

from __future__ import annotations

from msakit.workflows.serve.app import ServeOptions, create_app, serve, sniff_media

__all__ = ["ServeOptions", "create_app", "serve", "sniff_media"]

"""The `ferry` command: serving a region, administration, `ferry sync`, and `ferry dev`."""

from ferry.cli.main import app

__all__ = ["app"]

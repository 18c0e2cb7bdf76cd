"""Ferry: a container image registry with SWR's management API and sync between regions."""

__version__ = "0.1.0"

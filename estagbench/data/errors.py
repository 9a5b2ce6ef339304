"""Error types of the data layer."""

from __future__ import annotations

__all__ = ["DataError", "ChecksumError", "DataNotFoundError"]


class DataError(ValueError):
    """A data file is unreadable, malformed or inconsistent; the message names the file."""


class ChecksumError(DataError):
    """A file's SHA-256 differs from the official one."""


class DataNotFoundError(FileNotFoundError):
    """A data file is absent and cannot be downloaded; the message says where to put it."""

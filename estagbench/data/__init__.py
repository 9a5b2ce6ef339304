"""Datasets: download, checksum, cache, parse, split, windows and graphs."""

from .errors import ChecksumError, DataError, DataNotFoundError

__all__ = ["ChecksumError", "DataError", "DataNotFoundError"]

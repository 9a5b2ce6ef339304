"""Datasets: download, checksum, cache, parse, split, windows and graphs."""

from .base import CaseData, FileRecord, PreparedCase, SplitData
from .catalog import DATASETS, get_dataset_spec, list_datasets, load_case, resolve_cases
from .errors import ChecksumError, DataError, DataNotFoundError

__all__ = [
    "CaseData",
    "ChecksumError",
    "DATASETS",
    "DataError",
    "DataNotFoundError",
    "FileRecord",
    "PreparedCase",
    "SplitData",
    "get_dataset_spec",
    "list_datasets",
    "load_case",
    "resolve_cases",
]

"""Datasets: download, checksum, cache, parse, split, windows and graphs.

Every dataset is registered with :func:`register_dataset` (:mod:`.registry`); ``get_dataset``,
``list_datasets`` and ``load_case`` read the registry.
"""

from .base import CaseData, FileRecord, PreparedCase, SplitData
from .catalog import DATASETS, get_dataset_spec
from .errors import ChecksumError, DataError, DataNotFoundError
from .registry import (
    DataFile,
    Dataset,
    Protocol,
    get_dataset,
    list_datasets,
    load_case,
    register_dataset,
    resolve_cases,
)

__all__ = [
    "CaseData",
    "ChecksumError",
    "DATASETS",
    "DataError",
    "DataFile",
    "DataNotFoundError",
    "Dataset",
    "FileRecord",
    "PreparedCase",
    "Protocol",
    "SplitData",
    "get_dataset",
    "get_dataset_spec",
    "list_datasets",
    "load_case",
    "register_dataset",
    "resolve_cases",
]

"""Old import names of the dataset table, kept as thin re-exports of :mod:`estagbench.data.registry`.

The registry is the one source of truth: a dataset is a class decorated with
:func:`~estagbench.data.registry.register_dataset` in its own module.
``DATASETS`` is a read-only view of the registered names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .registry import Dataset, get_dataset, list_datasets, load_case, resolve_cases

__all__ = ["DatasetSpec", "DATASETS", "get_dataset_spec", "list_datasets", "resolve_cases", "load_case"]

#: The old name of a registered dataset's type.
DatasetSpec = Dataset
#: The old name of :func:`~estagbench.data.registry.get_dataset`.
get_dataset_spec = get_dataset


class _RegisteredDatasets(Mapping[str, Dataset]):
    """Read-only ``name -> Dataset`` view of the registry (filled on first use)."""

    def __getitem__(self, name: str) -> Dataset:
        if name not in list_datasets():
            raise KeyError(name)
        return get_dataset(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list_datasets())

    def __len__(self) -> int:
        return len(list_datasets())


DATASETS: Mapping[str, Dataset] = _RegisteredDatasets()

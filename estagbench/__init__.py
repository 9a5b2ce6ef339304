"""estagbench: a benchmark of equivariant spatio-temporal models of physical dynamics.

Reproduces Wu et al., "Equivariant Spatio-Temporal Attentive Graph Networks to
Simulate Physical Dynamics" (ESTAG, NeurIPS 2023) and its baselines under one protocol.
"""

from ._memory import configure_allocator

ALLOCATOR = configure_allocator()  # before torch is imported; see estagbench/_memory.py

from .data.registry import get_dataset, list_datasets, register_dataset  # noqa: E402
from .registry import create_model, get_model_entry, list_models, register_model  # noqa: E402
from .types import Batch, DatasetInfo  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "DatasetInfo",
    "create_model",
    "get_dataset",
    "list_datasets",
    "register_dataset",
    "get_model_entry",
    "list_models",
    "register_model",
    "__version__",
]

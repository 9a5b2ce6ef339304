"""estagbench: a benchmark of equivariant spatio-temporal models of physical dynamics.

Reproduces Wu et al., "Equivariant Spatio-Temporal Attentive Graph Networks to
Simulate Physical Dynamics" (ESTAG, NeurIPS 2023) and its baselines under one protocol.
"""

from .registry import create_model, get_model_entry, list_models, register_model
from .types import Batch, DatasetInfo

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "DatasetInfo",
    "create_model",
    "get_model_entry",
    "list_models",
    "register_model",
    "__version__",
]

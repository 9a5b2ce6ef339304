"""Shared layers (MLPs, equivariant message passing helpers)."""

from ._mlp import MLP

__all__ = ["MLP"]

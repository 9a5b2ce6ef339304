"""Shared layers (MLPs, equivariant message passing helpers)."""

"""Which best-validation checkpoints (``<out>/runs/<cell>/best.pt``) a run keeps.

``rollout`` and ``plot attention|sample`` load ``best.pt``; ``plot curves`` reads only
``log.csv`` (always kept).  The default, ``auto``, keeps the checkpoint of every model with at
most :data:`AUTO_MAX_PARAMS` trainable parameters (every equivariant model of the paper: about
9 k on AdK) and drops larger ones (AGL-STAN: 53 M parameters, 203 MB on AdK), which ``rollout``
retrains when it needs them.  ``all`` keeps every one, ``none`` (``--no-checkpoints``) none.
"""

from __future__ import annotations

__all__ = ["POLICIES", "AUTO_MAX_PARAMS", "keep_checkpoint", "checkpoint_note"]

POLICIES = ("auto", "all", "none")

#: ``auto`` keeps the checkpoints of models up to this many trainable parameters (4 MB in float32).
AUTO_MAX_PARAMS = 1_000_000


def keep_checkpoint(policy: str, num_params: int) -> bool:
    """Whether a run of a model with ``num_params`` trainable parameters keeps ``best.pt``."""
    if policy not in POLICIES:
        raise ValueError(f"checkpoint policy {policy!r}: expected one of {', '.join(POLICIES)}")
    if policy == "all":
        return True
    if policy == "none":
        return False
    return num_params <= AUTO_MAX_PARAMS


def checkpoint_note(policy: str, num_params: int) -> str:
    """Why a trained cell has no ``best.pt`` (stored in its record)."""
    if policy == "none":
        return "not kept (--no-checkpoints)"
    return (f"not kept: {num_params:,} parameters > {AUTO_MAX_PARAMS:,} (the default --checkpoints auto); "
            "`estagbench run ... --checkpoints all` keeps it, `estagbench rollout` retrains the cell when it needs it")

"""Which best-validation checkpoints (``<out>/runs/<cell>/best.pt``) a run keeps.

``rollout`` and ``plot attention|sample`` load ``best.pt``; ``plot curves`` reads only
``log.csv`` (always kept).  The default, ``auto``, keeps the checkpoint of every model with at
most :data:`AUTO_MAX_PARAMS` trainable parameters (every equivariant model of the paper: about
9 k on AdK) and drops larger ones (AGL-STAN: 53 M parameters, 203 MB on AdK), which ``rollout``
retrains when it needs them.  ``all`` keeps every one, ``none`` (``--no-checkpoints``) none.

The policy of a training run is the ``checkpoints`` argument of
:func:`estagbench.train.train_model`, else the environment variable :data:`ENV`
(``estagbench run --checkpoints`` sets it for the run, so that it reaches every worker
process of every executor), else ``auto``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["POLICIES", "AUTO_MAX_PARAMS", "ENV", "current_policy", "checkpoint_policy", "keep_checkpoint",
           "checkpoint_note"]

POLICIES = ("auto", "all", "none")

#: The environment variable holding the policy of the running command.
ENV = "ESTAGBENCH_CHECKPOINTS"


def current_policy(policy: str | None = None) -> str:
    """``policy`` if given, else ``$ESTAGBENCH_CHECKPOINTS``, else ``auto``; checked."""
    value = policy or os.environ.get(ENV) or "auto"
    if value not in POLICIES:
        raise ValueError(f"checkpoint policy {value!r} (argument or ${ENV}): expected one of {', '.join(POLICIES)}")
    return value

#: ``auto`` keeps the checkpoints of models up to this many trainable parameters (4 MB in float32).
AUTO_MAX_PARAMS = 1_000_000


@contextmanager
def checkpoint_policy(policy: str) -> Iterator[None]:
    """Set :data:`ENV` to ``policy`` inside the block (inherited by worker processes), then restore it."""
    old = os.environ.get(ENV)
    os.environ[ENV] = current_policy(policy)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old


def keep_checkpoint(policy: str, num_params: int) -> bool:
    """Whether a run of a model with ``num_params`` trainable parameters keeps ``best.pt``."""
    policy = current_policy(policy)
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

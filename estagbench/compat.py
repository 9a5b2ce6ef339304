"""Whether a model can run a dataset case at all, asked before any of its cells trains.

A model that cannot (single-channel model on multi-channel positions, a history T shorter
than its temporal kernel needs, ...) refuses with a ``ValueError`` when it is built or when it
first sees a batch; the grid reports that (model, case) as skipped with the model's own
reason and goes on with the rest.
"""

from __future__ import annotations

from typing import Any

import torch

from .types import DatasetInfo

__all__ = ["incompatibility"]


def incompatibility(
    model: str, info: DatasetInfo, hidden: int, hparams: dict[str, Any] | None = None, probe: Any = None
) -> str | None:
    """The reason ``model`` cannot run the case described by ``info``, or ``None`` if it can.

    The model is built once on the CPU and, when ``probe`` (a split of the case, e.g. its
    training windows) is given, run on its first window without gradients; then it is dropped
    (training builds its own after seeding, so the numbers do not change).  Only a
    ``ValueError`` counts as "cannot run"; a ``TypeError`` (a hyper-parameter the builder does not
    take, or of the wrong type) is bad input and is raised as a ``ValueError`` naming
    ``--model-hparams``; anything else is a bug and propagates.
    """
    from .evaluate import Evaluator, iterate_batches
    from .registry import create_model, get_model_entry

    entry = get_model_entry(model)
    if info.num_channels > 1 and not entry.multichannel:
        return "single-channel model on multi-channel data"
    try:
        built = create_model(model, info, hidden=hidden, **(hparams or {}))
        if probe is not None and len(probe) > 0:
            x, y = next(iter(iterate_batches(probe, 1)))
            built.eval()
            with torch.no_grad():
                built(Evaluator(info, 1, "cpu", entry.batch_transform).make_batch(x, y))
    except TypeError as exc:
        given = ",".join(f"{k}={v}" for k, v in (hparams or {}).items())
        raise ValueError(f"--model-hparams {given or '(none)'}: model {model} refuses it ({exc})") from None
    except ValueError as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None

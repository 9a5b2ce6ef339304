"""The paper's protocol constants, defined once (Wu et al. 2023, Appendix D; docs/protocol.md).

Every default that the protocol fixes -- history length, strides, split rules, learning
rates, batch size, epochs, evaluation period, seeds, table scales -- is named here and
imported wherever it is used, so that changing a default is a one-line change.  Per-dataset
values are grouped by dataset; a registered dataset (:mod:`estagbench.data.registry`)
declares which of them it uses in its :class:`~estagbench.data.registry.Protocol`.

This module imports nothing from the package: every layer may import it.
"""

from __future__ import annotations

__all__ = [
    "HISTORY", "SPLIT_SEED", "SEEDS", "EPOCHS", "BATCH_SIZE", "EVAL_EVERY", "WEIGHT_DECAY", "HIDDEN",
    "LR", "LR_MD17", "LR_ADK", "LR_MOTION",
    "MD17_STRIDE", "MD17_MARGIN", "MD17_FRACTIONS", "MD17_CAPS", "MD17_CUTOFF",
    "TRAJECTORY_MARGIN", "TRAJECTORY_FRACTIONS",
    "ADK_STRIDE", "ADK_FRACTIONS", "ADK_CUTOFF",
    "MOTION_STRIDE", "MOTION_SCALE", "MD17_SCALE",
]

# ----------------------------------------------------------------- every dataset
#: T, the number of input frames fed to a model.
HISTORY = 10
#: Seed of the split draws (numpy's legacy RNG), as the authors' code.
SPLIT_SEED = 100
#: Training seeds of the ESTAG tables (mean ± std over these).
SEEDS: tuple[int, ...] = (1, 2, 3)
#: Training epochs, batch size, evaluation period (epochs), Adam weight decay, hidden width.
EPOCHS = 500
BATCH_SIZE = 100
EVAL_EVERY = 5
WEIGHT_DECAY = 1e-12
HIDDEN = 16

# ----------------------------------------------------------------- learning rates
LR_MD17 = 5e-3
LR_ADK = 5e-5
LR_MOTION = 5e-3
#: The trainer's default learning rate (a dataset's registration overrides it).
LR = LR_MD17

# ----------------------------------------------------------------- MD17 (Table 1)
#: Δ, frames between two inputs.
MD17_STRIDE = 10
#: Frames excluded at both ends of a trajectory before drawing window starts.
MD17_MARGIN = 10000
#: train/val/test fractions of the candidate starts, and caps on each split.
MD17_FRACTIONS: tuple[float, float, float] = (0.1, 0.05, 0.05)
MD17_CAPS: tuple[int, int, int] = (500, 2000, 2000)
#: λ, the 1-hop cutoff (Å) in the first frame.
MD17_CUTOFF = 1.6
#: MSE tables print ×10⁻³ Å².
MD17_SCALE = 1e3

# --------------------------------------- the project's trajectory files (MD17 rules)
#: Margin and fractions of a PATH.npz trajectory (and the simulated peptides): short
#: trajectories, equilibrated before recording, so no margin and larger fractions.
TRAJECTORY_MARGIN = 0
TRAJECTORY_FRACTIONS: tuple[float, float, float] = (0.3, 0.15, 0.15)

# ----------------------------------------------------------------- AdK (Table 2)
ADK_STRIDE = 5
ADK_FRACTIONS: tuple[float, float, float] = (0.6, 0.2, 0.2)
ADK_CUTOFF = 6.0

# ----------------------------------------------------------------- CMU motion (Table 3)
MOTION_STRIDE = 5
#: MSE tables print ×10⁻¹.
MOTION_SCALE = 1e1

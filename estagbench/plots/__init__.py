"""Figures from stored results, written as PNG and PDF (matplotlib, Agg canvas).

* :func:`plot_curves`: training loss and validation MSE per epoch, one line per
  model (mean over seeds, band = min..max), from ``<results>/runs/<cell>/log.csv``.
* :func:`plot_rollout`: rollout MSE per step (the paper's Figure 5), from the
  per-step table that ``estagbench rollout`` writes.
* :func:`plot_attention`: ESTAG's temporal attention map per block (Eq. 10) and the
  temporal pooling weights (Eq. 13), as in Figure 7, from a trained checkpoint.
* :func:`plot_tsweep`: test MSE against the history length T (Figure 12, Table 6).
* :func:`plot_sample`: a test sample's true and predicted positions in 3D, one
  panel per model (Figures 8 and 10).

Figures are built with :class:`matplotlib.figure.Figure` on an Agg canvas, never
through ``pyplot``, so importing this package changes no global backend state.

Modules: :mod:`._stored` (records, curves, trained models), :mod:`._figures` (the figures),
:mod:`.cli` (``estagbench plot``).
"""

from ._figures import plot_attention, plot_curves, plot_rollout, plot_sample, plot_tsweep, save_figure
from ._stored import attention_summary, find_records, load_trained, predict, read_curve
from .cli import PLOT_KINDS, _read_rollout, _scale, add_plot_arguments, add_plot_parser, run_plot_command

__all__ = [
    "save_figure",
    "find_records",
    "read_curve",
    "load_trained",
    "predict",
    "attention_summary",
    "plot_curves",
    "plot_rollout",
    "plot_attention",
    "plot_tsweep",
    "plot_sample",
    "PLOT_KINDS",
    "add_plot_parser",
    "add_plot_arguments",
    "run_plot_command",
    "_read_rollout",
    "_scale",
]

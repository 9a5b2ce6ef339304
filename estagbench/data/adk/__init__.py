"""AdK protein trajectories as 4-channel residue graphs (Section 5.2, Appendix C of Wu et al. 2023).

Data card
---------
* **Input**: any topology + trajectory pair that MDAnalysis reads (PSF/DCD, TPR/XTC,
  PDB/DCD, ...).  Only protein residues are used (MDAnalysis' ``protein`` selection:
  water, ions and ligands are left out).
* **Nodes**: one per residue, with a 4-channel position ``X_i(t) ∈ R^{3×4}`` in the
  channel order :data:`CHANNELS` ``= (N, CA, C, O)``, so ``ca_channel = 1``
  (Appendix C, "the position of C_α").  Positions are in Å, read as written in the file
  (the ``adk_equilibrium`` trajectory is already fitted on the AdK CORE domain; nothing
  is centred or aligned here).
* **Residues missing a backbone atom**: the C-terminal residue of a CHARMM topology
  names its carboxylate oxygens ``OT1``/``OT2`` (GROMACS: ``OC1``/``OC2``, OPLS-AA
  ``O1``/``O2``) and has no atom called ``O``.  A residue without ``O`` takes the first
  of ``o_aliases`` (default ``("OT1", "OC1", "O1")``) as its O channel, so AdK keeps
  all 214 residues.  A residue still missing one of N, CA, C, O is dropped, with a
  :class:`UserWarning` that lists it, and the drop is recorded in ``CaseData.notes``.
  If a residue holds two atoms of the same name (alternate locations), the first in
  file order is used.
  ``o_aliases=()`` reproduces the authors' loader, which keeps only residues whose
  ``backbone`` selection has 4 atoms and so drops the C-terminal GLY 214 (213 nodes).
* **Node features** ``(N, 4)``: the paper's text (Section 5.2) says "the atomic number of
  four backbone atoms", but the authors' public loader feeds the topology's partial
  charges of the four backbone atoms (N, CA, C, O) of each residue.  ``node_features=
  "charges"`` follows the code (the default for the named cases), ``"atomic_number"``
  gives ``(7, 6, 6, 8)`` on every row, and ``"auto"`` (the default for
  :func:`load_adk`) uses charges when the topology has them and atomic numbers
  otherwise (a PDB, for instance).  The choice made is stored in ``params``.
* **Graph**: residues whose CA atoms are closer than ``cutoff`` (6 Å, the authors'
  default) in the first frame of the first trajectory; directed edges both ways, no
  self loops; edge feature = that CA–CA distance, ``(E, 1)`` in Å.
* **Frames**: the last frame of each trajectory is dropped, as the authors' loader does.
* **Windows and split**: history ``T`` frames ``s, s+Δ, …, s+(T−1)Δ`` and target
  ``s+TΔ``, with ``m = n − TΔ`` window starts in a trajectory of ``n`` frames (after the
  drop).  The split is chronological 6 : 2 : 2 (protocol.md) and replicates the
  authors' boundaries, which they computed from the frame count *before* the last
  frame was dropped, i.e. from ``M = m + 1``: train = starts ``[0, ⌊0.6M⌋)``, val =
  ``[⌊0.6M⌋, ⌊0.8M⌋)``, test = ``[⌊0.8M⌋, m)``.  On ``adk_equilibrium`` (4187 frames,
  T = 10, Δ = 5) this gives 2482 / 827 / 827 (with ``⌊f·m⌋`` block sizes it would be
  2481 / 827 / 827).  Several trajectories are separate trajectories of one case: the
  split is applied to each one and no window crosses a trajectory boundary.

Cases
-----
``equilibrium`` (``--dataset adk``, Table 2)
    The MDAnalysisData ``adk_equilibrium`` set (Seyler & Beckstein 2017,
    doi:10.6084/m9.figshare.5108170.v1, CC-BY 4.0): ``adk4AKE.psf`` and
    ``1ake_007-nowater-core-dt240ps.dcd`` (4187 frames, 240 ps apart, 1.004 µs,
    3341 atoms), cached in ``<data_dir>/adk_equilibrium/`` (the folder name
    MDAnalysisData uses).  :func:`download_adk_equilibrium` fetches them from the
    figshare URLs in :data:`ADK_EQUILIBRIUM_FILES`.  T = 10, Δ = 5.
``mini`` (``--dataset adk-mini``, the offline default)
    The real AdK trajectories that the ``MDAnalysisTests`` package ships: ``adk.psf``
    with the two DIMS closed→open transition paths ``adk_dims.dcd`` (98 frames) and
    ``adk_dims2.dcd`` (102 frames) (Beckstein et al., J. Mol. Biol. 394, 2009).  With the
    protocol's Δ = 5 the paths give only 47 + 51 window starts (9 + 10 test
    windows); with Δ = 1 (T = 10 kept) they give 87 + 91, i.e. 107 / 36 / 35 windows, so
    adk-mini uses Δ = 1.  A DIMS step moves a CA by 0.39 Å on average, so Δ = 1 is
    still a non-trivial prediction.  The NAMD GBIS path is not used: it needs its own
    topology file and is a targeted-MD run with steps four times smaller, a different
    dynamics from the DIMS paths.  The files are found in the installed package; if
    ``MDAnalysisTests`` is missing, ``<data_dir>/adk/`` (the layout of
    ``../shared/data``) is used instead.

Generic use: ``load_adk(topology, [traj, ...], case=...)``; :func:`parse_md_spec`
splits a ``topology::traj1::traj2`` command-line string.

Modules: :mod:`.split` (the split), :mod:`.residues` (reading and the generic loader),
:mod:`.dataset` (the registered datasets: files, checksums, download, named cases).
"""

from .dataset import (
    ADK_EQUILIBRIUM_DIR,
    ADK_EQUILIBRIUM_FILES,
    ADK_MINI_FILES,
    CASE_DEFAULTS,
    AdK,
    ProteinFiles,
    RemoteFile,
    adk_equilibrium_paths,
    adk_mini_paths,
    download_adk_equilibrium,
    load_adk_case,
    load_adk_equilibrium,
    load_adk_mini,
    parse_md_spec,
)
from .residues import BACKBONE_Z, CA_CHANNEL, CHANNELS, DEFAULT_O_ALIASES, NODE_FEATURES, backbone_table, load_adk
from .split import adk_chronological_split

__all__ = [
    "CHANNELS",
    "CA_CHANNEL",
    "BACKBONE_Z",
    "DEFAULT_O_ALIASES",
    "NODE_FEATURES",
    "ADK_EQUILIBRIUM_DIR",
    "ADK_EQUILIBRIUM_FILES",
    "ADK_MINI_FILES",
    "CASE_DEFAULTS",
    "RemoteFile",
    "adk_chronological_split",
    "backbone_table",
    "load_adk",
    "load_adk_case",
    "load_adk_equilibrium",
    "load_adk_mini",
    "adk_mini_paths",
    "adk_equilibrium_paths",
    "download_adk_equilibrium",
    "parse_md_spec",
    "AdK",
    "ProteinFiles",
]

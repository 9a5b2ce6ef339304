"""Forward kinematics of an Acclaim ASF skeleton moved by AMC angles.

For a bone b with parent p, ASF axis angles ``a_b`` (its local frame in the rest
pose), unit direction ``d_b`` and length ``l_b``, and the AMC angles ``θ_b(t)``:

.. math::

    C_b = R_{o_3}(a_3) R_{o_2}(a_2) R_{o_1}(a_1), \\qquad
    M_b(t) = \\prod_{\\text{dof } k \\text{ of } b,\\ \\text{last first}} R_{k}(θ_{b,k}(t)),

    G_b(t) = G_p(t)\\, C_b M_b(t) C_b^{-1}, \\qquad
    x_b(t) = x_p(t) + G_b(t)\\, l_b d_b,

where ``o_1 o_2 o_3`` is the ``axis`` order string (``XYZ``: x applied first), the
dofs compose in their listed order (x first for ``rx ry rz``) and ``R_k`` is the
active right-handed rotation about axis k.  The root has ``G_0 = C_0 M_0 C_0^{-1}``
from the ``:root`` orientation and the AMC root rotation, and
``x_0 = position + translation``.  Bone lengths are therefore constant in time.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .amc import Motion, parse_amc
from .asf import _AXES, Skeleton, parse_asf

__all__ = ["skeleton_fk", "forward_kinematics"]


# ----------------------------------------------------------------- kinematics
def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Active right-handed rotations about coordinate ``axis``: ``(..., 3, 3)``."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def _euler(angles: np.ndarray, order: Sequence[str]) -> np.ndarray:
    """Rotation applying ``order[0]`` first: ``R_{o_last} ⋯ R_{o_0}``; ``angles (..., k)``."""
    angles = np.asarray(angles, dtype=np.float64)
    out = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for k, ax in enumerate(order):
        out = _rot(_AXES[ax.lower()[-1]], angles[..., k]) @ out
    return out


def skeleton_fk(skeleton: Skeleton, motion: Motion, length_scale: float = 1.0) -> np.ndarray:
    """Joint positions ``(F, J, 3)`` of ``motion`` on ``skeleton`` (module docstring maths).

    Vectorised over frames: one batched matrix product per bone.  Positions are in
    ASF length units times ``length_scale`` (e.g. :data:`ASF_UNIT_METRES` for metres).
    """
    F = motion.num_frames
    J = skeleton.num_joints
    pos = np.zeros((F, J, 3))
    glob = np.zeros((F, J, 3, 3))
    order = skeleton.root_order
    t_cols = [order.index(c) for c in ("TX", "TY", "TZ")]
    r_names = [c for c in order if c.startswith("R")]
    r_cols = [order.index(c) for c in r_names]
    c_root = _euler(skeleton.root_orientation, skeleton.root_axis_order)
    m_root = _euler(motion.root[:, r_cols], r_names)
    glob[:, 0] = c_root @ m_root @ c_root.T
    pos[:, 0] = (skeleton.root_position + motion.root[:, t_cols]) * length_scale
    for b in skeleton.fk_order:
        bone = skeleton.bones[b]
        c = _euler(bone.axis, bone.axis_order)
        if bone.dof:
            m = _euler(motion.bones[bone.name], bone.dof)
            local = c @ m @ c.T
            g = glob[:, bone.parent] @ local
        else:
            g = glob[:, bone.parent]
        glob[:, b + 1] = g
        pos[:, b + 1] = pos[:, bone.parent] + g @ (bone.direction * (bone.length * length_scale))
    return pos


def forward_kinematics(
    asf_path: str | os.PathLike[str], amc_path: str | os.PathLike[str], length_scale: float = 1.0
) -> np.ndarray:
    """Joint positions of an ASF/AMC pair by forward kinematics.

    Parameters
    ----------
    asf_path, amc_path : the skeleton and the motion file.
    length_scale : multiplies every length (1 keeps the ASF's length units).

    Returns
    -------
    np.ndarray
        ``(frames, joints, 3)`` float64: the root, then the end point of each bone
        in the ASF's ``:bonedata`` order (31 joints for CMU skeletons).
    """
    sk = parse_asf(asf_path)
    return skeleton_fk(sk, parse_amc(amc_path, sk), length_scale)



"""CMU motion capture, one module per job: :mod:`.asf` (skeleton files), :mod:`.amc` (motion
files), :mod:`.kinematics` (joint positions) and :mod:`.dataset` (the registered ``motion-*``
datasets: cases, files, download, split, loader; its docstring is the data card)."""

from .amc import Motion, parse_amc
from .asf import ASF_UNIT_METRES, Bone, Skeleton, parse_asf, skeleton_edges
from .dataset import (
    CASES,
    KNOWN_SHA256,
    SPLIT_TRIALS,
    URL_BASE,
    WALK_TRIALS,
    CMUMotion,
    MotionCaseSpec,
    download_motion,
    load_motion,
    motion_files,
)
from .kinematics import forward_kinematics, skeleton_fk

__all__ = [
    "Bone",
    "Skeleton",
    "Motion",
    "parse_asf",
    "parse_amc",
    "skeleton_fk",
    "forward_kinematics",
    "skeleton_edges",
    "MotionCaseSpec",
    "CASES",
    "SPLIT_TRIALS",
    "WALK_TRIALS",
    "URL_BASE",
    "KNOWN_SHA256",
    "ASF_UNIT_METRES",
    "motion_files",
    "download_motion",
    "load_motion",
    "CMUMotion",
]

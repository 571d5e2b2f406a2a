"""Capture what a training script knows: code version, environment, data fingerprints.

This module only re-exports; pandas, pyarrow and numpy load when a table is fingerprinted or
sampled, so ``import steward.lineage`` stays cheap.
"""

from steward.lineage._environment import Environment, command_line, environment
from steward.lineage._fingerprint import fingerprint
from steward.lineage._git import GitState, git_state
from steward.lineage._sample import ReferenceSample, read_reference_sample, reference_sample

__all__ = [
    "Environment",
    "GitState",
    "ReferenceSample",
    "command_line",
    "environment",
    "fingerprint",
    "git_state",
    "read_reference_sample",
    "reference_sample",
]

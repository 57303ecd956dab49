"""The recommended policy as files: its compressed file, its ONNX export, and their parity check.

Parity: the ONNX graph (:func:`rlcomp.compress.export.policy_to_onnx`, run in ONNX Runtime) and
the PyTorch policy loaded back from the written compressed file decide on the recorded
observations (states of the teacher's own episodes, 1,000 by default); the check reports the
largest absolute difference of their actions (for a greedy policy, of the action indices: 0
when every action agrees) and of the network outputs. The same inputs give the same file bytes
and the same ONNX bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlcomp.compress.export import onnx_session, policy_to_onnx
from rlcomp.compress.storage import SUFFIX, load_compressed
from rlcomp.files import atomic_write
from rlcomp.policy import Policy

POLICY_FILE = "policy" + SUFFIX
"""Name of the recommended policy's compressed file in the output folder."""

ONNX_FILE = "policy.onnx"
"""Name of its ONNX export."""

OUTPUT_TOLERANCE = 1e-4
"""Largest network-output difference (relative to the outputs' largest magnitude) that passes."""


@dataclass(frozen=True)
class Parity:
    """The ONNX export against PyTorch on recorded observations."""

    observations: int
    max_abs_action_diff: float
    max_abs_output_diff: float
    actions_agree: float
    """Share of observations whose actions are identical."""
    ok: bool

    def to_dict(self) -> dict:
        return {"observations": self.observations, "max_abs_action_diff": self.max_abs_action_diff,
                "max_abs_output_diff": self.max_abs_output_diff,
                "actions_agree": self.actions_agree, "ok": self.ok}


def parity_check(policy: Policy, onnx_bytes: bytes, obs: np.ndarray) -> Parity:
    """Compare ``policy`` (PyTorch) with the ONNX model ``onnx_bytes`` on ``obs``."""
    import onnx
    import torch

    session = onnx_session(onnx.load_from_string(onnx_bytes))
    obs = np.ascontiguousarray(obs, dtype=np.float32)
    out_onnx, act_onnx = session.run(["output", "action"], {"obs": obs})
    x = obs if policy.obs_norm is None else policy.obs_norm(obs)
    with torch.no_grad():
        out_torch = policy.net(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()
    act_torch = policy.act(obs)
    action_diff = np.abs(np.asarray(act_onnx, dtype=np.float64)
                         - np.asarray(act_torch, dtype=np.float64))
    output_diff = float(np.abs(out_onnx.astype(np.float64) - out_torch).max())
    same = action_diff.reshape(len(obs), -1).max(axis=1) == 0
    scale = max(float(np.abs(out_torch).max()), 1.0)
    ok = bool(same.all()) if policy.action == "argmax" else \
        float(action_diff.max()) <= OUTPUT_TOLERANCE * scale
    return Parity(len(obs), float(action_diff.max()), output_diff, float(same.mean()),
                  ok and output_diff <= OUTPUT_TOLERANCE * scale)


@dataclass(frozen=True)
class Artifacts:
    """The files written for the recommendation."""

    policy_file: Path
    onnx_file: Path
    file_bytes: int
    onnx_bytes: int
    parity: Parity


def write_artifacts(out_dir: str | Path, blob: bytes, obs: np.ndarray) -> Artifacts:
    """Write the compressed file ``blob`` and its ONNX export into ``out_dir``; check parity.

    The policy is loaded back from the written file, so the ONNX model and the check are of
    exactly what was written. Each file is written atomically.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    policy_path = out / POLICY_FILE
    atomic_write(policy_path, blob)
    policy = load_compressed(policy_path).policy
    onnx_bytes = policy_to_onnx(policy).SerializeToString()
    onnx_path = out / ONNX_FILE
    atomic_write(onnx_path, onnx_bytes)
    return Artifacts(policy_path, onnx_path, len(blob), len(onnx_bytes),
                     parity_check(policy, onnx_bytes, obs))

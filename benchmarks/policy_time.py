"""Policy time of the int8 LunarLander seed-0 policy relative to the dense one, with its interval.

Compresses the committed ``checkpoints/LunarLander-v3__ddqn__0`` with ``quant=8``, writes the
compressed file to a temporary directory, and runs
:func:`rlcomp.probes.policy_time.policy_time_ratio` against the dense checkpoint: one fresh process
pinned to one core with one thread, interleaved A/B blocks of batch-1 decisions on observations
recorded from the environment. Prints a readable line, then, as the last line, JSON with the
ratio, its 95% interval, ``ci_halfwidth`` (the interval's half-width as a fraction of the ratio;
the target is <= 0.03), the times per decision, the wall seconds of the call, and each network's
multiply-accumulates and bytes of weights read per decision (:mod:`rlcomp.probes.cost`).

Usage: ``.venv/bin/python benchmarks/policy_time.py [--pairs 300] [--decisions 20]
[--statistic min|median|mean] [--core K]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from rlcomp.checkpoint import load_checkpoint, policy_from_checkpoint
from rlcomp.compress import compress
from rlcomp.compress.storage import SUFFIX, compressed_file_bytes
from rlcomp.probes.cost import decision_cost
from rlcomp.probes.policy_time import (
    DEFAULT_DECISIONS,
    DEFAULT_PAIRS,
    STATISTICS,
    policy_time_ratio,
)

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "LunarLander-v3__ddqn__0"
SPEC = "quant=8"


def main() -> None:
    """Run the comparison and print its figures; the last line is JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=DEFAULT_PAIRS)
    parser.add_argument("--decisions", type=int, default=DEFAULT_DECISIONS)
    parser.add_argument("--statistic", choices=STATISTICS, default="median")
    parser.add_argument("--core", type=int, default=None)
    args = parser.parse_args()
    ckpt = load_checkpoint(CHECKPOINT)
    dense = policy_from_checkpoint(ckpt)
    int8 = dataclasses.replace(dense, net=compress(dense.net, SPEC).eval())
    blob = compressed_file_bytes(int8, {"env_id": ckpt.env_id, "algo": ckpt.algo, "spec": SPEC,
                                        "source": ckpt.name, "source_digest": ckpt.digest})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"int8{SUFFIX}"
        path.write_bytes(blob)
        started = time.perf_counter()
        result = policy_time_ratio(path, CHECKPOINT, pairs=args.pairs, decisions=args.decisions,
                                   statistic=args.statistic, core=args.core)
        seconds = time.perf_counter() - started
    cost = {"int8": decision_cost(int8.net), "dense": decision_cost(dense.net)}
    print(f"{ckpt.name} {SPEC} vs dense: policy time ratio {result.ratio:.3f} "
          f"(95% CI {result.ci_low:.3f}-{result.ci_high:.3f}, half-width "
          f"{100 * result.ci_halfwidth:.2f}% of the ratio); {result.candidate_s * 1e6:.1f} vs "
          f"{result.reference_s * 1e6:.1f} us per batch-1 decision ({result.statistic} of each "
          f"block); {result.pairs} pairs x "
          f"{result.decisions} decisions on core {result.core}, {seconds:.2f} s; MACs "
          f"{cost['int8'].macs} vs {cost['dense'].macs}, weight bytes read "
          f"{cost['int8'].weight_bytes_read} vs {cost['dense'].weight_bytes_read}")
    print(json.dumps({
        "ratio": result.ratio, "ci_low": result.ci_low, "ci_high": result.ci_high,
        "ci_halfwidth": result.ci_halfwidth, "pairs": result.pairs,
        "decisions": result.decisions, "statistic": result.statistic,
        "candidate_s": result.candidate_s, "reference_s": result.reference_s,
        "core": result.core, "seconds": seconds, "observations": result.observations,
        "macs_per_decision": {k: c.macs for k, c in cost.items()},
        "weight_bytes_read": {k: c.weight_bytes_read for k, c in cost.items()},
    }))


if __name__ == "__main__":
    main()

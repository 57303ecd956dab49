"""The targets of ``rlcomp choose`` on a LunarLander policy: time, size, re-evaluated return, reuse.

Runs ``rlcomp choose CHECKPOINT --env ENV --max-drop 0.05 --objective bytes`` twice on a fresh
store (each in a fresh process, timed by the wall clock), then re-evaluates the recommended file in
another fresh process on ``--episodes`` (300) new episodes from seed ``--seed`` (0; choose plays
seeds from 500,000 on), with the dense and random policies on the same seeds, and prints:

- ``first_seconds`` (target <= 600 on 2 cores) and ``second_seconds`` with their ratio
  (target <= 0.10: the second run reuses the store);
- ``factor``: dense model bytes over the recommendation's (target >= 100);
- ``reevaluated_normalized_return``: ``100 * (x - random) / (dense - random)`` over the new
  episodes (target >= 95), with its Fieller 95% interval;
- ``racing_share``: episodes played over those of evaluating every raced candidate fully
  (target <= 0.40).

``--reevaluate-only`` skips the two runs and re-evaluates the ``policy.rlc.safetensors`` in
``--out``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RE_EVALUATE = """
import json, sys
from rlcomp.checkpoint import policy_from_checkpoint
from rlcomp.choose.command import load_teacher
from rlcomp.choose.ratio import normalized_interval
from rlcomp.compress.storage import load_compressed
from rlcomp.envs import configure_torch
from rlcomp.policy import RandomPolicy
from rlcomp.rollout import evaluate_policy
ckpt, artifact, episodes, seed, env_id = (sys.argv[1], sys.argv[2], int(sys.argv[3]),
                                          int(sys.argv[4]), sys.argv[5])
configure_torch()
teacher = load_teacher(ckpt, env_id)
model = load_compressed(artifact)
env = teacher.env_id
x = evaluate_policy(model.policy, env, episodes, seed).returns
d = evaluate_policy(policy_from_checkpoint(teacher), env, episodes, seed).returns
r = evaluate_policy(RandomPolicy.for_env(env, seed=seed), env, episodes, seed).returns
nr = normalized_interval(x, d, r, 0.95)
print(json.dumps({"spec": model.spec, "mean_return": sum(x) / len(x),
                  "dense_mean": sum(d) / len(d), "random_mean": sum(r) / len(r),
                  "normalized_return": nr.estimate, "ci_low": nr.ci_low, "ci_high": nr.ci_high,
                  "episodes": episodes, "seeds": [seed, seed + episodes - 1]}))
"""


def choose_run(args: argparse.Namespace, out: Path) -> tuple[dict, float]:
    command = [sys.executable, "-m", "rlcomp.choose.command", args.checkpoint, "--env", args.env,
               "--max-drop", "0.05", "--objective", "bytes", "--store", args.store,
               "--out", str(out), "--json", "--quiet"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1]), time.perf_counter() - started


def reevaluate(args: argparse.Namespace, artifact: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", RE_EVALUATE, args.checkpoint, str(artifact),
                           str(args.episodes), str(args.seed), args.env],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="checkpoints/LunarLander-v3__ddqn__0")
    parser.add_argument("--env", default="LunarLander-v3")
    parser.add_argument("--store", default="/tmp/choose-target/rlcomp.sqlite",
                        help="results store (use a fresh one for a cold first run)")
    parser.add_argument("--out", default="/tmp/choose-target/out")
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reevaluate-only", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    result: dict = {}
    if not args.reevaluate_only:
        first, first_seconds = choose_run(args, out / "first")
        second, second_seconds = choose_run(args, out / "second")
        result.update({
            "recommended": first["recommended"], "same_recommendation":
                first["recommended"] == second["recommended"],
            "same_artifact": (Path(first["artifact"]).read_bytes()
                              == Path(second["artifact"]).read_bytes()),
            "first_seconds": first_seconds, "second_seconds": second_seconds,
            "second_over_first": second_seconds / first_seconds,
            "factor": first["factor"], "bytes": first["bytes"],
            "dense_bytes": first["dense_bytes"], "normalized_return": first["normalized_return"],
            "ci_low": first["ci_low"], "racing_share": first["racing_share"],
            "episodes_used": first["episodes_used"],
            "episodes_if_exhaustive": first["episodes_if_exhaustive"],
            "second_episodes_run": second["episodes_run"],
            "second_builds_run": second["builds_run"]})
        artifact = Path(first["artifact"])
    else:
        artifact = out / "policy.rlc.safetensors"
    again = reevaluate(args, artifact)
    result.update({"reevaluated_" + k: v for k, v in again.items()})
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

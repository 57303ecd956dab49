"""The ``rlcomp`` command line: ``rlcomp train`` and ``rlcomp evaluate``.

Every user mistake ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import sys
import textwrap
import types
import typing
from dataclasses import MISSING, fields

EXIT_USAGE = 2


class UsageError(Exception):
    """A mistake in what the user asked for; reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string literal under each field)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _value_parser(annotation) -> typing.Callable[[str], object]:
    """A function that parses one command-line string into a config field's type."""
    hint = annotation if not isinstance(annotation, str) else eval(annotation, vars(typing))  # noqa: S307
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = _value_parser(next(a for a in args if a is not type(None)))

        def optional(text: str):
            return None if text.lower() in ("none", "null") else inner(text)

        return optional
    if origin is tuple:
        return lambda text: tuple(int(x) for x in text.split(",") if x.strip())
    if hint is bool:

        def boolean(text: str) -> bool:
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
            raise ValueError(text)

        boolean.__name__ = "true/false"
        return boolean
    return hint


def _format_default(value) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return "none" if value is None else str(value)


def _add_config_options(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """Add one option per config field of every algorithm; return which algos have each field."""
    from rlcomp.agents.train import CONFIGS

    owners: dict[str, set[str]] = {}
    helps: dict[str, list[str]] = {}
    parsers: dict[str, typing.Callable] = {}
    for algo, cls in CONFIGS.items():
        docs = field_docs(cls)
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if f.name in ("env_id", "seed", "total_steps"):
                continue
            owners.setdefault(f.name, set()).add(algo)
            default = f.default if f.default is not MISSING else None
            helps.setdefault(f.name, []).append(
                f"[{algo}] {docs.get(f.name, '')} (default {_format_default(default)})")
            parsers[f.name] = _value_parser(hints[f.name])
    group = parser.add_argument_group(
        "algorithm settings", "each applies to the algorithm(s) in brackets")
    for name in owners:
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, type=parsers[name],
                           default=argparse.SUPPRESS, metavar="X", help=" ".join(helps[name]))
    return owners


def _train(args: argparse.Namespace, owners: dict[str, set[str]], argv: list[str]) -> int:
    from tqdm import tqdm

    from rlcomp.agents.train import make_config, train_and_save

    overrides = {name: getattr(args, name) for name in owners if hasattr(args, name)}
    for name in overrides:
        if args.algo not in owners[name]:
            raise UsageError(f"rlcomp train: --{name.replace('_', '-')} is a setting of "
                             f"{'/'.join(sorted(owners[name]))}, not of {args.algo}")
    overrides["env_id"] = args.env
    overrides["seed"] = args.seed
    if args.steps is not None:
        overrides["total_steps"] = args.steps
    try:
        config = make_config(args.algo, **overrides)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"rlcomp train: {exc}") from exc
    bar = tqdm(total=config.total_steps, unit="step", dynamic_ncols=True, disable=args.quiet,
               desc=f"{config.env_id} {args.algo} seed {config.seed}")

    def progress(step: int, recent: float | None) -> None:
        bar.update(step - bar.n)
        if recent is not None:
            bar.set_postfix(recent_return=f"{recent:.1f}", refresh=False)

    try:
        path, result = train_and_save(args.algo, config, args.out, progress,
                                      command=["rlcomp", *argv])
    except ValueError as exc:
        raise UsageError(f"rlcomp train: {exc}") from exc
    finally:
        bar.close()
    summary = {
        "checkpoint": str(path),
        "mean_return": result.final_eval["mean_return"],
        "std_return": result.final_eval["std_return"],
        "train_steps": result.train_steps,
        "selected_step": result.selected_step,
        "wall_seconds": result.wall_seconds,
        "cpu_seconds": result.cpu_seconds,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"saved {path}.safetensors and {path}.json")
        print(f"final evaluation ({result.final_eval['episodes']} episodes): "
              f"{summary['mean_return']:.1f} +- {summary['std_return']:.1f}; "
              f"{result.train_steps} steps in {result.wall_seconds:.0f} s")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from rlcomp.agents.checkpoint import CheckpointError, load_checkpoint, policy_from_checkpoint
    from rlcomp.envs import configure_torch
    from rlcomp.probes.rollout import evaluate_policy

    if args.episodes < 1:
        raise UsageError(f"rlcomp evaluate: --episodes must be >= 1, got {args.episodes}")
    if args.seed < 0:
        raise UsageError(f"rlcomp evaluate: --seed must be >= 0, got {args.seed}")
    try:
        ckpt = load_checkpoint(args.checkpoint, env_id=args.env)
    except (CheckpointError, ValueError) as exc:
        raise UsageError(f"rlcomp evaluate: {exc}") from exc
    configure_torch()
    result = evaluate_policy(policy_from_checkpoint(ckpt), ckpt.env_id, args.episodes, args.seed)
    summary = {"checkpoint": str(ckpt.path), "env_id": ckpt.env_id, "algo": ckpt.algo,
               **result.summary()}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{ckpt.path} ({ckpt.env_id}, {ckpt.algo}): "
          f"{args.episodes} episodes from seed {args.seed}")
    print(f"mean {summary['mean_return']:.2f}  std {summary['std_return']:.2f}  "
          f"IQM {summary['iqm_return']:.2f}  min {summary['min_return']:.2f}  "
          f"max {summary['max_return']:.2f}  ({summary['eval_seconds']:.2f} s)")
    print("returns: " + " ".join(f"{r:.1f}" for r in summary["returns"]))
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, set[str]]]:
    """The ``rlcomp`` argument parser, and which algorithm owns each training option."""
    parser = _Parser(prog="rlcomp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train an agent and save its checkpoint",
                           description="Train an agent and save ENV__ALGO__SEED.safetensors/.json.")
    train.add_argument("--env", required=True,
                       help="environment id: LunarLander-v3, HalfCheetah-v5 (v2 names accepted)")
    train.add_argument("--algo", required=True, choices=["ddqn", "pg"],
                       help="ddqn (Double DQN, discrete actions) or pg (policy gradient/PPO)")
    train.add_argument("--seed", type=int, required=True, help="training seed")
    train.add_argument("--steps", type=int, default=None,
                       help="environment steps to train (default: the algorithm's total_steps)")
    train.add_argument("--out", default="checkpoints",
                       help="output directory (default: checkpoints)")
    train.add_argument("--json", action="store_true", help="print a JSON summary")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    owners = _add_config_options(train)

    ev = sub.add_parser("evaluate", help="evaluate a checkpoint's deterministic policy",
                        description="Run seeded episodes of a checkpoint's greedy/mean policy.")
    ev.add_argument("checkpoint", help="NAME.safetensors, NAME.json, or NAME")
    ev.add_argument("--episodes", type=int, default=100, help="episodes (default 100)")
    ev.add_argument("--seed", type=int, default=0, help="episode i uses seed SEED + i (default 0)")
    ev.add_argument("--env", default=None, help="refuse a checkpoint of another environment")
    ev.add_argument("--json", action="store_true", help="print JSON")
    return parser, owners


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser, owners = build_parser()
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        if args.command == "train":
            return _train(args, owners, argv)
        return _evaluate(args)
    except UsageError as exc:
        print(str(exc).splitlines()[0] if str(exc) else "rlcomp: error", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rlcomp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

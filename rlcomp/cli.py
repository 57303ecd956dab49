"""The ``rlcomp`` command line: ``train``, ``compress``, ``evaluate`` and ``sweep``.

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

if typing.TYPE_CHECKING:
    from rlcomp.checkpoint import Checkpoint

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

    from rlcomp.agents.common import run_name
    from rlcomp.agents.train import check_output_dir, make_config, train_and_save

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
    try:
        check_output_dir(args.out, run_name(config.env_id, args.algo, config.seed))
    except ValueError as exc:
        raise UsageError(f"rlcomp train: --out: {exc}") from exc
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


def _foreign(command: str, name: str, args: argparse.Namespace) -> Checkpoint | None:
    """The imported checkpoint if ``name`` is a foreign file (SB3 zip, state dict), else None.

    For our own files, refuse ``--obs-norm`` (they carry their own statistics).
    """
    from rlcomp.imports import is_foreign, load_foreign

    if is_foreign(name):
        try:
            return load_foreign(name, args.env, args.activation, args.obs_norm)
        except ValueError as exc:
            raise UsageError(f"{command}: {exc}") from exc
    if args.obs_norm is not None:
        raise UsageError(f"{command}: --obs-norm is for foreign files (SB3 zips, state dicts); "
                         f"{name} carries its own observation statistics")
    return None


def _check_activation(command: str, given: str | None, found: str | None, name: str) -> None:
    """Refuse an ``--activation`` that contradicts the activation of our own file."""
    if given is not None and found is not None and given != found:
        raise UsageError(f"{command}: --activation {given} contradicts {name}, whose network "
                         f"uses {found}")


def _evaluate(args: argparse.Namespace) -> int:
    from rlcomp.checkpoint import policy_from_checkpoint
    from rlcomp.compress.storage import LoadedPolicy, load_checkpoint_or_compressed
    from rlcomp.envs import configure_torch
    from rlcomp.nets import activation_name
    from rlcomp.rollout import evaluate_policy

    if args.episodes < 1:
        raise UsageError(f"rlcomp evaluate: --episodes must be >= 1, got {args.episodes}")
    if args.seed < 0:
        raise UsageError(f"rlcomp evaluate: --seed must be >= 0, got {args.seed}")
    ckpt = _foreign("rlcomp evaluate", args.model, args)
    if ckpt is not None:
        model = LoadedPolicy(policy_from_checkpoint(ckpt), ckpt.env_id, ckpt.algo, "dense",
                             ckpt.digest, ckpt.path)
    else:
        try:
            model = load_checkpoint_or_compressed(args.model, env_id=args.env)
        except ValueError as exc:
            raise UsageError(f"rlcomp evaluate: {exc}") from exc
        _check_activation("rlcomp evaluate", args.activation,
                          activation_name(model.policy.net), args.model)
    configure_torch()
    result = evaluate_policy(model.policy, model.env_id, args.episodes, args.seed)
    summary = {"checkpoint": str(model.path), "env_id": model.env_id, "algo": model.algo,
               "spec": model.spec, **result.summary()}
    if args.json:
        print(json.dumps(summary))
        return 0
    compression = "" if model.spec == "dense" else f", {model.spec}"
    print(f"{model.path} ({model.env_id}, {model.algo}{compression}): "
          f"{args.episodes} episodes from seed {args.seed}")
    print(f"mean {summary['mean_return']:.2f}  std {summary['std_return']:.2f}  "
          f"IQM {summary['iqm_return']:.2f}  min {summary['min_return']:.2f}  "
          f"max {summary['max_return']:.2f}  ({summary['eval_seconds']:.2f} s)")
    print("returns: " + " ".join(f"{r:.1f}" for r in summary["returns"]))
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, outputs that would overwrite the input or cannot be written."""
    from pathlib import Path

    from rlcomp.checkpoint import checkpoint_paths
    from rlcomp.files import check_writable

    inputs = [p for p in checkpoint_paths(args.checkpoint) if p.exists()]
    if Path(args.checkpoint).is_file():
        inputs.append(Path(args.checkpoint))
    for option, target in (("--out", args.out), ("--onnx", args.onnx)):
        if target is None:
            continue
        path = Path(target)
        if any(path.resolve() == p.resolve() or (path.exists() and path.samefile(p))
               for p in inputs):
            raise UsageError(f"rlcomp compress: {option} {target} is the input checkpoint; "
                             "refusing to overwrite it")
        try:
            check_writable(path)
        except ValueError as exc:
            raise UsageError(f"rlcomp compress: {option}: {exc}") from exc
    if args.onnx is not None and Path(args.onnx).resolve() == Path(args.out).resolve():
        raise UsageError("rlcomp compress: --onnx and --out name the same file")


def _write_outputs(outputs: list[tuple[str, bytes]]) -> None:
    """Write each ``(path, data)``; an operating-system failure is a one-line usage error."""
    from rlcomp.files import atomic_write

    for path, data in outputs:
        try:
            atomic_write(path, data)
        except OSError as exc:
            raise UsageError(f"rlcomp compress: cannot write {path} "
                             f"({exc.strerror or type(exc).__name__})") from exc


def _compress(args: argparse.Namespace) -> int:
    from rlcomp.checkpoint import CheckpointError, load_checkpoint
    from rlcomp.compress import format_spec, parse_spec
    from rlcomp.compress.export import policy_to_onnx
    from rlcomp.compress.storage import compressed_file_bytes
    from rlcomp.probes.size import model_size, theoretical_bytes
    from rlcomp.retrain.pipeline import compressed_policy

    try:
        specs = parse_spec(args.spec)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"rlcomp compress: bad --spec: {exc}") from exc
    if args.seed < 0:
        raise UsageError(f"rlcomp compress: --seed must be >= 0, got {args.seed}")
    _check_outputs(args)
    ckpt = _foreign("rlcomp compress", args.checkpoint, args)
    if ckpt is None:
        try:
            ckpt = load_checkpoint(args.checkpoint, env_id=args.env)
        except CheckpointError as exc:
            raise UsageError(f"rlcomp compress: {exc}") from exc
        _check_activation("rlcomp compress", args.activation,
                          ckpt.meta.get("activation", "relu"), args.checkpoint)
    spec = format_spec(specs)
    bar = None
    if any(s.method == "distill" for s in specs) and not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="step", desc="distill", file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.refresh()

    try:
        compressed = compressed_policy(ckpt, specs, seed=args.seed,
                                       progress=None if bar is None else progress).policy
    except ValueError as exc:
        raise UsageError(f"rlcomp compress: cannot apply {spec}: {exc}") from exc
    finally:
        if bar is not None:
            bar.close()
    data = compressed_file_bytes(compressed, {
        "env_id": ckpt.env_id, "algo": ckpt.algo, "spec": spec, "source": ckpt.name,
        "source_digest": ckpt.digest})
    try:
        onnx_data = None if args.onnx is None else policy_to_onnx(compressed).SerializeToString()
    except TypeError as exc:
        raise UsageError(f"rlcomp compress: --onnx: {exc}") from exc
    _write_outputs([(args.out, data)] + ([] if onnx_data is None else [(args.onnx, onnx_data)]))
    size = model_size(compressed.net)
    summary = {"checkpoint": str(ckpt.path), "env_id": ckpt.env_id, "algo": ckpt.algo,
               "spec": spec, "out": str(args.out), "onnx": args.onnx,
               "params": size.params, "weights": size.weights,
               "nonzero_weights": size.nonzero_weights, "bytes": len(data),
               "theoretical_bytes": theoretical_bytes(compressed.net),
               "onnx_bytes": None if onnx_data is None else len(onnx_data)}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{args.out}: {ckpt.name} compressed with {spec}")
    print(f"{summary['params']:,} parameters, {summary['nonzero_weights']:,} of "
          f"{summary['weights']:,} weights nonzero; {summary['bytes']:,} bytes "
          f"(theoretical {summary['theoretical_bytes']:,})")
    if onnx_data is not None:
        print(f"{args.onnx}: ONNX, {len(onnx_data):,} bytes")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    import sqlite3

    from rlcomp.experiments.driver import run_sweep
    from rlcomp.experiments.jobs import JobError
    from rlcomp.experiments.schema import StoreError
    from rlcomp.experiments.store import ResultStore
    from rlcomp.experiments.sweep import SweepError, load_sweep

    if args.workers is not None and args.workers < 1:
        raise UsageError(f"rlcomp sweep: --workers must be >= 1, got {args.workers}")
    if args.address is not None and args.executor != "ray":
        raise UsageError("rlcomp sweep: --address needs --executor ray")
    try:
        sweep = load_sweep(args.file)
    except SweepError as exc:
        raise UsageError(f"rlcomp sweep: {exc}") from exc
    if args.executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise UsageError("rlcomp sweep: --executor ray needs the ray package") from exc
    try:
        store = ResultStore(args.store)
    except StoreError as exc:
        raise UsageError(f"rlcomp sweep: {exc}") from exc
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="job", desc="sweep", file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    with store:
        try:
            summary = run_sweep(sweep, store, executor=args.executor, workers=args.workers,
                                address=args.address, progress=progress)
        except (ValueError, JobError, sqlite3.Error) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"rlcomp sweep: {first}") from exc
        finally:
            if bar is not None:
                bar.close()
    if args.json:
        print(json.dumps(summary.to_dict()))
    else:
        elsewhere = (f", {summary.jobs_run_elsewhere} run by another sweep"
                     if summary.jobs_run_elsewhere else "")
        print(f"{args.file}: {summary.jobs_total} jobs, {summary.jobs_skipped} already stored, "
              f"{summary.jobs_run} run in {summary.seconds:.1f} s{elsewhere} -> {summary.store}")
    return 0


def _add_foreign_options(parser: argparse.ArgumentParser) -> None:
    """``--env``, ``--activation`` and ``--obs-norm``: what a foreign policy file does not say."""
    parser.add_argument("--env", default=None,
                        help="the environment of a foreign policy (required for one); for our "
                             "own files, refuse one of another environment")
    parser.add_argument("--activation", choices=["relu", "tanh"], default=None,
                        help="the activation of a state dict's MLP (required for one; an SB3 zip "
                             "names its own or has SB3's default)")
    parser.add_argument("--obs-norm", default=None, metavar="FILE",
                        help="a foreign policy's VecNormalize statistics: .npz or .json with "
                             "mean and var (optional clip_obs, epsilon)")


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

    comp = sub.add_parser(
        "compress", help="compress a checkpoint's policy into a compact file",
        description="Compress a checkpoint's policy network with SPEC and write the compact file "
                    "(and optionally ONNX). SPEC is METHOD=LEVEL[,key=value...], several joined "
                    "by + and applied left to right, or dense: prune=P (scope=layer, "
                    "structured=true, layers=P1/P2/..), lowrank=R (keep_io=true, "
                    "layers=R1/R2/..), quant=8|4|2 (group=G, mixed=true, mode=qat, "
                    "layers=B1/B2/..), distill=WxW (tau=T, steps=N; trains a student "
                    "on the environment, about 30 CPU s).")
    comp.add_argument("checkpoint", help="NAME.safetensors, NAME.json, or NAME; or a foreign "
                                         "policy: an SB3 zip or a state dict (.pt, .safetensors)")
    comp.add_argument("--spec", required=True, help="compression spec, e.g. lowrank=0.3+prune=0.5")
    comp.add_argument("--out", required=True, help="compressed file to write (.rlc.safetensors)")
    comp.add_argument("--onnx", default=None, help="also export the compressed policy as ONNX")
    comp.add_argument("--seed", type=int, default=0,
                      help="seed of a distillation (default 0)")
    comp.add_argument("--json", action="store_true", help="print JSON")
    comp.add_argument("--quiet", action="store_true", help="no progress bar (distillation)")
    _add_foreign_options(comp)

    ev = sub.add_parser("evaluate", help="evaluate a checkpoint's or compressed file's policy",
                        description="Run seeded episodes of a checkpoint's or a compressed file's "
                                    "greedy/mean policy.")
    ev.add_argument("model", metavar="checkpoint",
                    help="a checkpoint (NAME.safetensors, NAME.json or NAME), a compressed file, "
                         "or a foreign policy: an SB3 zip or a state dict (.pt, .safetensors)")
    ev.add_argument("--episodes", type=int, default=100, help="episodes (default 100)")
    ev.add_argument("--seed", type=int, default=0, help="episode i uses seed SEED + i (default 0)")
    ev.add_argument("--json", action="store_true", help="print JSON")
    _add_foreign_options(ev)

    from rlcomp.choose.command import add_arguments as add_choose_arguments

    ch = sub.add_parser(
        "choose", help="pick the compression of a policy that keeps its return under a bound",
        description="Search compressions of POLICY (our checkpoint, an SB3 zip or a state dict) "
                    "for the smallest by OBJECTIVE whose normalized return keeps 1 - MAX_DROP of "
                    "the dense policy's at its interval's lower end; write the compressed file, "
                    "its ONNX export and a report.")
    add_choose_arguments(ch)

    sw = sub.add_parser("sweep", help="run a YAML grid of compress-and-measure jobs",
                        description="Run the jobs of a sweep file that the store does not have "
                                    "yet, storing each result as it finishes.")
    sw.add_argument("file", help="sweep file (YAML: checkpoints, specs, episodes, eval_seeds, "
                                 "optional finetune and probes)")
    sw.add_argument("--executor", choices=["local", "ray"], default="local",
                    help="local process pool (default) or Ray")
    sw.add_argument("--workers", type=int, default=None,
                    help="parallel jobs (default: one per core)")
    sw.add_argument("--address", default=None,
                    help="Ray cluster address (default: start a local Ray instance)")
    sw.add_argument("--store", default="results/rlcomp.sqlite",
                    help="results store (default: results/rlcomp.sqlite)")
    sw.add_argument("--json", action="store_true", help="print a JSON summary")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser, owners


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser, owners = build_parser()
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        if args.command == "train":
            return _train(args, owners, argv)
        if args.command == "compress":
            return _compress(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "choose":
            from rlcomp.choose.command import run as run_choose

            return run_choose(args)
        return _evaluate(args)
    except UsageError as exc:
        print(str(exc).splitlines()[0] if str(exc) else "rlcomp: error", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rlcomp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

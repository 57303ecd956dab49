"""``rlcomp choose``: the command line of the search (wired into ``rlcomp.cli`` as a subcommand).

``add_arguments(parser)`` adds the options; ``run(args)`` runs the search and writes the artifacts
and the report, returning the exit code; ``main(argv)`` does both, for tests and ``python -m``;
``run_search(argv)`` does the same without printing and returns the result (the book's chapter 07).
Every user mistake ends with one line on stderr and exit code 2, never a traceback; a failed
ONNX parity check (the export disagrees with PyTorch) exits with 1 after writing everything.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from rlcomp.choose.artifacts import Artifacts
    from rlcomp.choose.search import ChooseResult

EXIT_USAGE = 2
EXIT_PARITY = 1

DEFAULT_BUDGET_MINUTES = 8.0
"""Minutes of a search unless ``--budget-minutes`` says otherwise (artifacts included)."""

DEFAULT_STORE = "results/rlcomp.sqlite"
DEFAULT_OUT = "results/choose"
"""The output folder's parent when ``--out`` is not given (the folder is the policy's name)."""


class UsageError(Exception):
    """A user mistake, reported as one line with exit code 2."""


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _looks(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in _csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"looks must be integers joined by commas, got {text!r}") \
            from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``rlcomp choose`` to ``parser``."""
    from rlcomp.choose.candidates import FAMILIES, STUDENTS
    from rlcomp.choose.search import OBJECTIVES
    from rlcomp.compress.specs import DISTILL_STEPS

    parser.add_argument("policy", help="the policy: a checkpoint (NAME, NAME.json or "
                                       "NAME.safetensors), an SB3 zip or a state dict (.pt, "
                                       ".safetensors)")
    parser.add_argument("--env", required=True, help="the environment it acts in, e.g. "
                                                     "LunarLander-v3")
    parser.add_argument("--activation", choices=["relu", "tanh"], default=None,
                        help="the activation of a state dict's MLP (required for one)")
    parser.add_argument("--obs-norm", default=None, metavar="FILE",
                        help="a foreign policy's VecNormalize statistics: .npz or .json with "
                             "mean and var")
    parser.add_argument("--max-drop", type=float, default=0.05,
                        help="the recommendation keeps 1 - MAX_DROP of the dense normalized "
                             "return at its interval's lower end (default 0.05)")
    parser.add_argument("--objective", default="bytes", choices=list(OBJECTIVES),
                        help="what to minimize: model bytes, ONNX latency or multiply-"
                             "accumulates per decision (default bytes)")
    parser.add_argument("--budget-minutes", type=float, default=DEFAULT_BUDGET_MINUTES,
                        help=f"wall minutes for the whole run (default {DEFAULT_BUDGET_MINUTES:g})")
    parser.add_argument("--out", default=None,
                        help=f"folder of the artifacts and report (default {DEFAULT_OUT}/NAME)")
    parser.add_argument("--store", default=DEFAULT_STORE,
                        help=f"results store every evaluation goes through (default "
                             f"{DEFAULT_STORE})")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of distillation, fine-tuning and the evaluation episodes "
                             "(default 0)")
    parser.add_argument("--families", type=_csv, default=FAMILIES,
                        help=f"method families to try (default {','.join(FAMILIES)})")
    parser.add_argument("--students", type=_csv, default=STUDENTS,
                        help=f"hidden widths of distilled students (default {','.join(STUDENTS)})")
    parser.add_argument("--distill-steps", type=int, default=DISTILL_STEPS,
                        help=f"environment steps of each distillation (default {DISTILL_STEPS})")
    parser.add_argument("--finetune-steps", type=int, default=10_000,
                        help="environment steps of each fine-tuning (default 10000)")
    parser.add_argument("--looks", type=_looks, default=(25, 50, 100, 200, 300),
                        help="cumulative episodes at which a candidate's interval is looked at "
                             "(default 25,50,100,200,300)")
    parser.add_argument("--min-accept", type=int, default=100,
                        help="episodes a candidate needs before it can be accepted (default 100)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object as the last line")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _config(args: argparse.Namespace):
    from rlcomp.choose.racing import RacingPlan
    from rlcomp.choose.search import OBJECTIVES, ChooseConfig

    if args.objective not in OBJECTIVES:
        raise UsageError(f"--objective must be one of {', '.join(OBJECTIVES)}, "
                         f"got {args.objective!r}")
    if not 0.0 < args.max_drop < 1.0:
        raise UsageError(f"--max-drop must be in (0, 1), got {args.max_drop:g}")
    if not args.budget_minutes >= 0:
        raise UsageError(f"--budget-minutes must be >= 0, got {args.budget_minutes:g}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    try:
        plan = RacingPlan(looks=tuple(args.looks), min_accept=args.min_accept)
        return ChooseConfig(max_drop=args.max_drop, objective=args.objective,
                            budget_seconds=60.0 * args.budget_minutes, seed=args.seed,
                            plan=plan, families=tuple(args.families),
                            students=tuple(args.students), distill_steps=args.distill_steps,
                            finetune_steps=args.finetune_steps,
                            reserve_seconds=min(30.0, 0.1 * 60.0 * args.budget_minutes))
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def load_teacher(policy: str, env: str, activation: str | None = None,
                 obs_norm: str | None = None):
    """The checkpoint ``policy`` names, refused unless it acts in ``env``.

    Foreign files (Stable-Baselines3 zips, plain state dicts) are read by
    :func:`rlcomp.imports.load_foreign`, with ``activation`` and ``obs_norm`` where the file does
    not say them; for our own checkpoints those two must not be given.

    Raises:
        ValueError: with a one-line reason.
    """
    from rlcomp.checkpoint import load_checkpoint
    from rlcomp.envs import resolve_env_id
    from rlcomp.imports import is_foreign, load_foreign

    env_id = resolve_env_id(env)
    if Path(policy).is_file() and is_foreign(policy):
        return load_foreign(policy, env_id, activation, obs_norm)
    if obs_norm is not None:
        raise ValueError(f"--obs-norm is for foreign files (SB3 zips, state dicts); {policy} "
                         "carries its own observation statistics")
    ckpt = load_checkpoint(policy, env_id=env_id)
    found = ckpt.meta.get("activation", "relu")
    if activation is not None and activation != found:
        raise ValueError(f"--activation {activation} contradicts {policy}, whose network uses "
                         f"{found}")
    return ckpt


def _progress_bar(args: argparse.Namespace, budget: float):
    if args.quiet:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=round(budget), unit="s", desc="choose", file=sys.stderr, dynamic_ncols=True,
               bar_format="{desc}{percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s{postfix}")

    def update(p) -> None:
        bar.n = min(round(p.seconds), bar.total)
        bar.set_description(p.phase[:40], refresh=False)
        bar.set_postfix_str(f"best {p.best} ({p.best_objective:,.4g}, {p.best_return:.1f}%), "
                            f"{p.episodes_used} episodes", refresh=True)

    return bar, update


def _print_text(data: dict) -> None:
    print(f"recommended: {data['recommended']}  ({data['bytes']:,} model bytes, "
          f"{data['factor']:,.1f}x smaller than dense {data['dense_bytes']:,})")
    low = "-inf" if data["ci_low"] is None else f"{data['ci_low']:.1f}"
    high = "inf" if data["ci_high"] is None else f"{data['ci_high']:.1f}"
    print(f"normalized return {data['normalized_return']:.1f}% [{low}, {high}] over "
          f"{data['episodes']} episodes (bound {data['keep']:g}%); objective {data['objective']} "
          f"= {data['objective_value']:.4g}")
    share = data["racing_share"]
    print(f"episodes: {data['episodes_used']:,} of {data['episodes_if_exhaustive']:,} "
          f"({'-' if share is None else f'{100 * share:.0f}%'}); {data['seconds']:.0f} s"
          + ("; the time budget ran out" if data["budget_exhausted"] else ""))
    if data["not_done"]:
        print(f"not tried or not finished: {len(data['not_done'])} candidates (see the report)")
    print(f"artifact {data['artifact']}, ONNX {data['onnx']} (parity "
          f"{'passed' if data['parity']['ok'] else 'FAILED'}), report {data['report']}")


def _search(args: argparse.Namespace) -> tuple[ChooseResult, Artifacts, dict]:
    """Run the search of parsed ``args``; write the artifacts and the report."""
    from rlcomp.choose.artifacts import write_artifacts
    from rlcomp.choose.report import write_report
    from rlcomp.choose.search import choose
    from rlcomp.experiments.schema import StoreError
    from rlcomp.experiments.store import ResultStore
    from rlcomp.files import check_writable

    config = _config(args)
    try:
        ckpt = load_teacher(args.policy, args.env, args.activation, args.obs_norm)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out) if args.out is not None else Path(DEFAULT_OUT) / ckpt.name
    try:
        check_writable(out / "report.md")
    except ValueError as exc:
        raise UsageError(f"--out: {exc}") from None
    try:
        store = ResultStore(args.store)
    except (StoreError, OSError) as exc:
        raise UsageError(f"--store: {exc}") from None
    bar, update = _progress_bar(args, config.budget_seconds)
    try:
        with store:
            result = choose(ckpt, store, config, update)
    except (ValueError, sqlite3.Error) as exc:
        raise UsageError(str(exc).splitlines()[0] or type(exc).__name__) from None
    finally:
        if bar is not None:
            bar.close()
    artifacts = write_artifacts(out, result.artifact_bytes, result.observations)
    data = write_report(out, result, artifacts)
    return result, artifacts, data


def _run(args: argparse.Namespace) -> int:
    result, artifacts, data = _search(args)
    if args.json:
        print(json.dumps(data, allow_nan=False))
    else:
        _print_text(data)
    if not artifacts.parity.ok:
        print(f"rlcomp choose: the ONNX export disagrees with PyTorch (largest action difference "
              f"{artifacts.parity.max_abs_action_diff:g})", file=sys.stderr)
        return EXIT_PARITY
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``rlcomp choose`` with parsed arguments; returns the exit code."""
    try:
        return _run(args)
    except UsageError as exc:
        print(f"rlcomp choose: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> _Parser:
    parser = _Parser(prog="rlcomp choose", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser


def run_search(argv: Sequence[str]) -> tuple[ChooseResult, dict]:
    """``rlcomp choose ARGV`` as a function (for the book): nothing is printed.

    The search runs as the command runs it and writes the same artifacts and report into its
    ``--out`` folder; a failed ONNX parity check is not an error here (the summary's ``parity``
    says it).

    Args:
        argv: the command's arguments, e.g. ``["checkpoints/X", "--env", "LunarLander-v3",
            "--quiet"]``.

    Returns:
        The :class:`~rlcomp.choose.search.ChooseResult` and the JSON summary (``report.json``).

    Raises:
        UsageError: for a mistake in ``argv``, with the command's one-line message.
    """
    result, _, data = _search(_parser().parse_args(list(argv)))
    return result, data


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's arguments) and run; returns the exit code."""
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"rlcomp choose: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run(args)
    except KeyboardInterrupt:
        print("rlcomp choose: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

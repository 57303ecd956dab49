"""Sweep files: a YAML grid of checkpoints x specs x evaluation seeds x fine-tune budgets -> jobs.

A sweep file::

    checkpoints:                # paths or globs, named as on the command line
      - checkpoints/LunarLander-v3__ddqn__*
    specs:                      # spec strings ...
      - dense
      - quant=8
      - random                  # (uniformly random actions: the anchor of normalized returns)
    # ... or a grid: the product of each method's levels, applied in the order written;
    # a level of 0 leaves that method out (all zero: dense); options go after the method name.
    #   specs:
    #     grid:
    #       lowrank: [0, 0.3, 0.6]
    #       prune,scope=layer: [0, 0.5, 0.9]
    # ... or a list mixing spec strings and grids (their union, duplicates once):
    #   specs:
    #     - quant=8
    #     - grid: {prune: [0, 0.5]}
    #     - grid: {"prune,scope=layer": [0.5]}
    episodes: 100               # evaluation episodes per job
    eval_seeds: [0]             # episode i of a job uses seed eval_seed + i
    finetune: {steps: [0]}      # optional; 0 is naive (no fine-tuning)
    probes: {latency: true, isolated_memory: false, policy_time: false}   # optional; defaults
    # (policy_time: the policy's time per decision over the dense policy's, A/B in a fresh process)

Every problem in the file is found before any job starts and reported together, each with its
line where the YAML gives one.
"""

from __future__ import annotations

import glob
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import yaml

from rlcomp.compress.specs import format_spec, parse_spec
from rlcomp.experiments.store import RANDOM_POLICY
from rlcomp.retrain.pipeline import check_spec

KEYS = {"checkpoints", "specs", "episodes", "eval_seeds", "finetune", "probes"}
REQUIRED = ("checkpoints", "specs", "episodes", "eval_seeds")
PROBE_DEFAULTS = {"latency": True, "isolated_memory": False, "policy_time": False}
"""Optional measurements; each adds its seconds to every job."""
FINETUNE_KEYS = {"steps"}


class SweepError(ValueError):
    """A sweep file with problems; the message lists each, with its line."""


@dataclass(frozen=True)
class Job:
    """One measurement: a checkpoint compressed by a spec, evaluated from a seed."""

    checkpoint: str
    """Checkpoint name (path without extension)."""
    checkpoint_digest: str
    env_id: str
    algo: str
    train_seed: int
    spec: str
    """Canonical spec text."""
    finetune: dict | None
    eval_seed: int
    probe: dict
    """Probe settings: ``episodes`` plus the optional measurements."""
    key: str = field(default="", compare=False)


@dataclass
class Sweep:
    """A validated sweep file."""

    path: Path
    checkpoints: list[str]
    specs: list[str]
    episodes: int
    eval_seeds: list[int]
    finetune_steps: list[int]
    probes: dict

    sources: dict[str, CheckpointInfo] = field(default_factory=dict, repr=False)
    """What validation read of each checkpoint (so planning reads no file twice)."""
    _jobs: list[Job] | None = field(default=None, repr=False, compare=False)

    def jobs(self) -> list[Job]:
        """Every job of the grid, in a fixed order (checkpoint, spec, fine-tune, seed).

        Computed once per sweep; a job re-checks its checkpoint's digest when it runs.
        """
        if self._jobs is None:
            self._jobs = list(self._plan())
        return list(self._jobs)

    def _plan(self) -> Iterator[Job]:
        from rlcomp.envs import CHAOTIC_ENVS, perturbation
        from rlcomp.experiments.store import job_key

        perturb = perturbation()
        for name in self.checkpoints:
            info = self.sources.get(name) or CheckpointInfo.read(name)
            probe = {"episodes": self.episodes, **self.probes}
            if perturb is not None and info.env_id in CHAOTIC_ENVS:
                # a simulated other CPU gives other episodes: they must never share a key
                probe["perturb_obs"] = {"scale": perturb.scale, "seed": perturb.seed}
            for spec, steps, eval_seed in itertools.product(self.specs, self.finetune_steps,
                                                            self.eval_seeds):
                if spec == RANDOM_POLICY and steps:
                    continue  # random actions have nothing to fine-tune
                finetune = {"steps": steps} if steps else None
                key = job_key(info.digest, spec, finetune, eval_seed, probe)
                yield Job(info.path, info.digest, info.env_id, info.algo, info.seed, spec,
                          finetune, eval_seed, dict(probe), key)


class CheckpointInfo(NamedTuple):
    """What a job needs to know of its checkpoint."""

    path: str
    """Absolute path without extension."""
    digest: str
    env_id: str
    algo: str
    seed: int

    @classmethod
    def read(cls, name: str) -> CheckpointInfo:
        """Load and validate the checkpoint ``name`` (raises ``CheckpointError``)."""
        from rlcomp.checkpoint import load_checkpoint

        ckpt = load_checkpoint(name)
        return cls(str(ckpt.path.resolve()), ckpt.digest, ckpt.env_id, ckpt.algo,
                   int(ckpt.meta.get("seed", -1)))


def _lines(node: yaml.Node) -> dict:
    """Line (1-based) of each top-level key, and of each item of top-level sequences."""
    out: dict = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = getattr(k, "value", None)
            out[key] = k.start_mark.line + 1
            if isinstance(v, yaml.SequenceNode):
                out[(key, "items")] = [item.start_mark.line + 1 for item in v.value]
            if isinstance(v, yaml.MappingNode):
                for k2, v2 in v.value:
                    out[(key, getattr(k2, "value", None))] = k2.start_mark.line + 1
                    if isinstance(v2, yaml.MappingNode):
                        for k3, _ in v2.value:
                            out[(key, k2.value, k3.value)] = k3.start_mark.line + 1
    return out


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _seed_list(value: object) -> bool:
    return (isinstance(value, list) and bool(value) and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value))


def _grid_specs(grid: object, where, problems: list[str]) -> list[str]:
    if not isinstance(grid, dict) or not grid:
        problems.append(f"{where('specs')}: specs grid must map methods to lists of levels, "
                        "and must not be empty")
        return []
    axes = []
    for method, levels in grid.items():
        line = where(("specs", "grid", method))
        if not isinstance(levels, list) or not levels:
            problems.append(f"{line}: grid {method!r} needs a non-empty list of levels")
            continue
        name, _, options = str(method).partition(",")
        texts = []
        for level in levels:
            text = f"{name}={level}" + (f",{options}" if options else "")
            try:
                spec = parse_spec(text)
            except (TypeError, ValueError) as exc:
                problems.append(f"{line}: {exc}")
                continue
            texts.append("" if getattr(spec[0], _level_name(spec[0])) == 0 else format_spec(spec))
        axes.append(texts)
    specs = []
    for combo in itertools.product(*axes):
        text = "+".join(t for t in combo if t) or "dense"
        parsed = parse_spec(text)
        try:
            check_spec(parsed)
        except ValueError as exc:
            problems.append(f"{where('specs')}: {exc} (grid combination {text})")
            return []
        canonical = format_spec(parsed)
        if canonical not in specs:
            specs.append(canonical)
    return specs


def _level_name(spec) -> str:
    from dataclasses import fields

    return fields(spec)[0].name


def _expand_checkpoints(entries: list, where,
                        problems: list[str]) -> dict[str, CheckpointInfo]:
    from rlcomp.checkpoint import CheckpointError, checkpoint_paths

    found: dict[str, CheckpointInfo] = {}
    lines = where(("checkpoints", "items"))
    for i, entry in enumerate(entries):
        line = lines[i] if isinstance(lines, list) and i < len(lines) else where("checkpoints")
        if not isinstance(entry, str) or not entry.strip():
            problems.append(f"{line}: checkpoint entries must be paths or globs, got {entry!r}")
            continue
        pattern = entry
        if glob.has_magic(pattern):
            matches = sorted({str(checkpoint_paths(p)[0].with_suffix(""))
                              for p in glob.glob(pattern) + glob.glob(pattern + ".json")
                              if p.endswith((".json", ".safetensors"))})
            if not matches:
                problems.append(f"{line}: no checkpoint matches {entry!r}")
        else:
            matches = [str(checkpoint_paths(pattern)[0].with_suffix(""))]
        for name in matches:
            if name in found:
                continue
            try:
                found[name] = CheckpointInfo.read(name)
            except CheckpointError as exc:
                problems.append(f"{line}: {exc}")
    return found


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file; checkpoint paths are relative to the working directory.

    Raises:
        SweepError: listing every problem found, each as ``FILE:LINE: what is wrong``.
    """
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"{path}: no such sweep file")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise SweepError(f"{path}: not a YAML text file (not UTF-8)") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SweepError(f"{path}{where}: not valid YAML ({problem})") from None
    return sweep_from_mapping(data, path, _lines(node))


def sweep_from_mapping(data: object, path: str | Path = "<sweep>",
                       lines: dict | None = None) -> Sweep:
    """Validate a sweep given as a mapping (the parsed YAML), as :func:`load_sweep` does.

    Args:
        data: the mapping.
        path: the name its problems are reported under.
        lines: line numbers of its keys (from the YAML), if any.

    Raises:
        SweepError: listing every problem found.
    """
    path = Path(path)
    lines = lines or {}
    if not isinstance(data, dict):
        raise SweepError(f"{path}: a sweep file is a mapping with keys {', '.join(sorted(KEYS))}")

    def where(key) -> str:
        line = lines.get(key)
        if isinstance(line, list):
            line = lines.get(key[0])
        return f"{path}:{line}" if line else str(path)

    problems: list[str] = []
    for key in data:
        if key not in KEYS:
            problems.append(f"{where(key)}: unknown key {key!r} (keys: {', '.join(sorted(KEYS))})")
    for key in REQUIRED:
        if key not in data:
            problems.append(f"{path}: missing key {key!r}")

    sources: dict[str, CheckpointInfo] = {}
    if "checkpoints" in data:
        entries = data["checkpoints"]
        if not isinstance(entries, list) or not entries:
            problems.append(f"{where('checkpoints')}: checkpoints must be a non-empty list")
        else:
            sources = _expand_checkpoints(entries, where, problems)

    specs: list[str] = []
    raw_specs = data.get("specs")
    if isinstance(raw_specs, dict) and set(raw_specs) == {"grid"}:
        specs = _grid_specs(raw_specs["grid"], where, problems)
    elif isinstance(raw_specs, list) and raw_specs:
        item_lines = lines.get(("specs", "items"), [])
        for i, item in enumerate(raw_specs):
            line = f"{path}:{item_lines[i]}" if i < len(item_lines) else where("specs")
            if isinstance(item, dict) and set(item) == {"grid"}:
                found = _grid_specs(item["grid"], lambda key, line=line: line, problems)
            elif item == RANDOM_POLICY:
                found = [RANDOM_POLICY]
            else:
                try:
                    parsed = parse_spec(str(item))
                    check_spec(parsed)
                    found = [format_spec(parsed)]
                except (TypeError, ValueError) as exc:
                    problems.append(f"{line}: {exc}")
                    continue
            specs.extend(s for s in found if s not in specs)
    elif "specs" in data:
        problems.append(f"{where('specs')}: specs must be a non-empty list of spec strings or "
                        "a mapping {grid: {method: [levels]}}")

    episodes = data.get("episodes")
    if "episodes" in data and not _positive_int(episodes):
        problems.append(f"{where('episodes')}: episodes must be an integer >= 1, got {episodes!r}")
    seeds = data.get("eval_seeds")
    if "eval_seeds" in data and not _seed_list(seeds):
        problems.append(f"{where('eval_seeds')}: eval_seeds must be a non-empty list of "
                        f"integers >= 0, got {seeds!r}")

    steps = [0]
    finetune = data.get("finetune")
    if finetune is not None:
        if not isinstance(finetune, dict) or set(finetune) - FINETUNE_KEYS:
            problems.append(f"{where('finetune')}: finetune must be a mapping with key 'steps'")
        else:
            raw = finetune.get("steps", [0])
            if not isinstance(raw, list) or not raw or not all(
                    isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw):
                problems.append(f"{where(('finetune', 'steps'))}: finetune steps must be a "
                                f"non-empty list of integers >= 0, got {raw!r}")
            else:
                steps = sorted(set(raw))

    probes = dict(PROBE_DEFAULTS)
    raw_probes = data.get("probes")
    if raw_probes is not None:
        if not isinstance(raw_probes, dict):
            problems.append(f"{where('probes')}: probes must be a mapping")
        else:
            for key, value in raw_probes.items():
                if key not in PROBE_DEFAULTS:
                    problems.append(f"{where(('probes', key))}: unknown probe {key!r} "
                                    f"(probes: {', '.join(PROBE_DEFAULTS)})")
                elif not isinstance(value, bool):
                    problems.append(f"{where(('probes', key))}: probe {key} must be true or "
                                    f"false, got {value!r}")
                else:
                    probes[key] = value

    if problems:
        count = f"{len(problems)} problems: " if len(problems) > 1 else ""
        raise SweepError(count + "; ".join(problems))
    return Sweep(path=path, checkpoints=list(sources), specs=specs, episodes=int(episodes),
                 eval_seeds=list(seeds), finetune_steps=steps, probes=probes, sources=sources)

"""Fine-tuning: continue an agent's own algorithm from its compressed network, compression held.

``finetune(ckpt, net, steps, seed)`` trains the compressed network ``net`` (what
``compress(policy_from_checkpoint(ckpt).net, spec)`` returned) for ``steps`` environment steps with
the algorithm and settings the checkpoint was trained with, and returns a network of the same
structure. What the compression fixed stays fixed:

- Pruned weights stay exactly zero. The mask is every weight that is zero when fine-tuning starts,
  in every Linear layer (factors and fake-quantized layers included). Masked gradients are zeroed
  as they are computed (before the gradient norm is clipped) and the mask is applied to the weights
  again after every optimizer step. (In an int8 network the zeros are its int8 zeros, which
  include small weights that rounded to zero: they cannot be told apart from pruned ones.)
- Factors stay factors: a :class:`FactorizedLinear` trains its two factors, whose shapes fix the
  rank. A dense layer that low rank left at rank ``k`` below full (because two factors would not
  have been smaller) is trained as its two rank-``k`` factors and multiplied back at the end, so its
  rank does not grow either. (A layer holding pruned zeros keeps its zeros instead: pruning after
  low rank has already changed its rank.)
- Quantization stays on: a :class:`FakeQuantLinear` (QAT) keeps computing with its rounded
  weights and learns through the straight-through estimator. A :class:`QuantizedLinear` (PTQ) is
  fine-tuned as the fake-quantized layer of the same width (8, 4 or 2 bits) and grouping that
  starts from its dequantized weights, and is quantized again at the end, so the result is again
  a network of the same widths.
- Double DQN's target network is a copy of the compressed online network and is updated by
  copying it, so it is compressed too ("compressed target networks", :func:`compressed_target`).

The training itself is the agent's own loop, :func:`rlcomp.agents.ddqn.ddqn_loop` or
:func:`rlcomp.agents.pg.pg_loop`, run through its hooks (:class:`rlcomp.agents.common.Hooks`):
``target`` is :func:`compressed_target`, ``after_optimizer_step`` re-applies the pruning mask;
the starting network is the compressed one and the number of steps is the budget.

Double DQN starts from an empty replay buffer filled by the compressed agent's own epsilon-greedy
actions (``epsilon`` defaults to the run's final ``eps_end``), with ``learning_starts`` of
``min(config.learning_starts, steps // 10)``; policy gradient continues with the checkpoint's value
network and log-std, normalises observations with the checkpoint's frozen statistics (they are
outside the compressed network, so fine-tuning leaves them alone), normalises rewards as the run
did, and learns from whole rollouts (the last one shorter if the budget ends inside a rollout).
Environment episodes are seeded from :data:`FINETUNE_SEED_BASE` on, apart from the evaluation
seeds. The same inputs and seed give bit-identical weights.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rlcomp.agents.common import Hooks, LoopResult
from rlcomp.agents.ddqn import DDQNConfig, ddqn_loop
from rlcomp.agents.pg import GaussianPolicy, PGConfig, pg_loop
from rlcomp.checkpoint import Checkpoint, build_net
from rlcomp.compress.lowrank import FactorizedLinear
from rlcomp.compress.prune import weight_layers, zero_smallest_weights
from rlcomp.compress.quant import FakeQuantLinear, QuantizedLinear
from rlcomp.compress.specs import PruneSpec, Spec
from rlcomp.envs import make_env, make_vec_env, set_seed
from rlcomp.nets import ObsNormalizer

FINETUNE_SEED_BASE = 2_000_000
"""Fine-tuning episodes are seeded from ``FINETUNE_SEED_BASE + seed`` on: apart from the final
evaluation seeds (below 1,000,000) and the snapshot-selection seeds (from 1,000,000 on)."""

DDQN_SETTINGS = ("lr", "buffer_size", "batch_size", "gamma", "learning_starts", "train_freq",
                 "gradient_steps", "target_update_interval", "max_grad_norm", "epsilon")
"""Settings a Double DQN fine-tuning may override (all but ``epsilon`` are DDQNConfig fields)."""

PG_SETTINGS = ("num_envs", "rollout_steps", "lr", "gamma", "gae_lambda", "clip", "update_epochs",
               "minibatch_size", "ent_coef", "vf_coef", "max_grad_norm", "normalize_reward")
"""Settings a policy-gradient fine-tuning may override (PGConfig fields)."""

RANK_RTOL = 1e-6
"""A dense layer counts as rank-reduced when singular values below ``RANK_RTOL`` times the largest
remain (computed in float64). Low rank leaves about 1e-8 there; the study's trained layers have
their smallest singular value above 1e-5 of the largest."""


@dataclass
class FinetuneResult:
    """A fine-tuned network and what fine-tuning it cost.

    Attributes:
        net: the fine-tuned network, of the same module types and shapes as the input.
        env_steps: environment steps taken (all environments together).
        updates: optimizer steps taken.
        cpu_seconds: CPU seconds of this process (all threads) while fine-tuning.
        wall_seconds: wall seconds of fine-tuning.
    """

    net: nn.Module
    env_steps: int
    updates: int
    cpu_seconds: float
    wall_seconds: float

    def to_dict(self) -> dict:
        """The costs, JSON-ready (without the network)."""
        return {
            "env_steps": int(self.env_steps),
            "updates": int(self.updates),
            "cpu_seconds": float(self.cpu_seconds),
            "wall_seconds": float(self.wall_seconds),
            "env_steps_per_second": (self.env_steps / self.wall_seconds
                                     if self.wall_seconds > 0 else 0.0),
        }


def compressed_target(net: nn.Module) -> nn.Module:
    """Double DQN's target network: a frozen copy of the compressed online network.

    It has the online network's structure (zeros, factors, fake quantization), and fine-tuning
    updates it with ``target.load_state_dict(online.state_dict())``, so it stays compressed.
    """
    target = copy.deepcopy(net)
    target.requires_grad_(False)
    return target


class PruningMask:
    """Holds the zeros of every Linear weight (factors included) fixed while a network trains.

    The mask is taken when the object is made: every weight that is zero then stays zero (with
    ``every_layer``, every Linear layer gets a mask, for masks that grow later). After
    :meth:`attach`, masked gradients are zeroed during the backward pass (before any clipping);
    :meth:`apply` sets the masked weights to zero again, and the training loop calls it after every
    optimizer step (its ``after_optimizer_step`` hook).
    """

    def __init__(self, net: nn.Module, every_layer: bool = False) -> None:
        self.masks: list[tuple[nn.Parameter, torch.Tensor]] = []
        for module in weight_layers(net):
            weight = module.weight
            if every_layer or bool((weight == 0).any()):
                self.masks.append((weight, (weight != 0).to(weight.dtype)))
        self._handles: list = []

    def apply(self) -> None:
        """Set every masked weight to zero."""
        with torch.no_grad():
            for weight, mask in self.masks:
                weight.mul_(mask)

    def attach(self) -> None:
        """Mask the gradients of the masked weights as the backward pass computes them."""
        for weight, mask in self.masks:
            self._handles.append(weight.register_hook(lambda grad, m=mask: grad * m))

    def detach(self) -> None:
        """Remove the hooks :meth:`attach` installed."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


GRADUAL_END = 0.75
"""Share of the fine-tuning budget (environment steps) over which a gradual schedule raises the
sparsity; the rest of the budget trains at the target sparsity."""

GRADUAL_EVENTS = 100
"""Pruning events of a gradual schedule: one every ``GRADUAL_END * steps / GRADUAL_EVENTS``
environment steps (Zhu & Gupta's pruning frequency)."""


class GradualPruning(PruningMask):
    """Gradual magnitude pruning while fine-tuning (Zhu & Gupta, 2017, "To prune, or not to prune").

    The sparsity after ``t`` of the budget's ``T`` environment steps is
    ``s_t = s * (1 - (1 - min(1, t / (GRADUAL_END * T))) ** 3)``: it rises fast at first, when
    many weights are redundant, then slowly, and reaches the target ``s`` at ``GRADUAL_END * T``.
    At :data:`GRADUAL_EVENTS` evenly spaced points the smallest weights up to ``s_t`` are zeroed
    (by the spec's scope, the weights already zero included, so a pruned weight stays pruned) and
    the mask grows to hold them; between events the mask holds as :class:`PruningMask` does.
    :meth:`finish` prunes to exactly ``s``: ``round(s * n)`` zero weights, as one-shot pruning.
    """

    def __init__(self, net: nn.Module, spec: PruneSpec, steps: int) -> None:
        super().__init__(net, every_layer=True)
        self.layers = weight_layers(net)
        self.spec, self.steps = spec, steps
        self.env_steps = 0
        self._every = max(1.0, GRADUAL_END * steps / GRADUAL_EVENTS)
        self._next = 0.0
        self.events = 0

    def sparsity_at(self, env_steps: int) -> float:
        """The schedule's target sparsity after ``env_steps`` environment steps."""
        done = min(1.0, env_steps / (GRADUAL_END * self.steps)) if self.steps else 1.0
        return self.spec.amount * (1.0 - (1.0 - done) ** 3)

    def observe(self, env_steps: int, curve: dict) -> None:
        """The loop's ``log`` hook: where the budget stands."""
        self.env_steps = env_steps

    def apply(self) -> None:
        """The ``after_optimizer_step`` hook: prune when an event is due, then hold the mask."""
        if self.env_steps >= self._next:
            self._prune_to(self.sparsity_at(self.env_steps))
            self._next = self.env_steps + self._every
        super().apply()

    def finish(self) -> None:
        """Prune to the target sparsity exactly and hold it."""
        self._prune_to(self.spec.amount)
        super().apply()

    def _prune_to(self, sparsity: float) -> None:
        with torch.no_grad():
            for weight, mask in self.masks:
                weight.mul_(mask)
            zero_smallest_weights(self.layers, sparsity, self.spec.scope)
            for weight, mask in self.masks:
                mask.copy_((weight != 0).to(mask.dtype))
        self.events += 1


def split_gradual(specs: tuple[Spec, ...]) -> tuple[tuple[Spec, ...], PruneSpec | None]:
    """The steps before a gradual pruning step, and that step (None without one).

    Raises:
        ValueError: if a gradual pruning step is not the last step of the spec.
    """
    for i, spec in enumerate(specs):
        if isinstance(spec, PruneSpec) and spec.schedule == "gradual":
            if i != len(specs) - 1:
                raise ValueError("prune schedule=gradual must be the last step of a spec "
                                 "(fine-tuning runs the schedule after the other steps)")
            return specs[:i], spec
    return specs, None


def _replace(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, module)


def _reduced_rank(weight: torch.Tensor) -> int | None:
    """The rank of a rank-deficient weight matrix, or none if it has full rank."""
    s = torch.linalg.svdvals(weight.detach().to(torch.float64))
    if s.numel() == 0 or s[0] == 0:
        return None
    rank = int((s > RANK_RTOL * s[0]).sum())
    return rank if rank < min(weight.shape) else None


def _factors_of(layer: nn.Linear, rank: int) -> FactorizedLinear:
    """``layer`` (of rank ``rank``) as two exact factors (SVD), the bias on the second."""
    u, s, vh = torch.linalg.svd(layer.weight.detach().to(torch.float64), full_matrices=False)
    return FactorizedLinear.from_tensors(s[:rank, None] * vh[:rank], u[:, :rank], layer.bias)


def _fake_quant_of(layer: QuantizedLinear) -> FakeQuantLinear:
    """The trainable fake-quantized layer that computes what ``layer`` computes."""
    out = FakeQuantLinear(layer.in_features, layer.out_features, bias=layer.qbias is not None,
                          bits=layer.bits, group=layer.group)
    with torch.no_grad():
        out.weight.copy_(layer.dequantized_weight())
        if layer.qbias is not None:
            out.bias.copy_(layer.bias)
    return out


def trainable_copy(net: nn.Module, keep_rank: bool = True) -> tuple[nn.Module, dict[str, str]]:
    """A copy of ``net`` whose parameters can train without breaking its compression.

    Int8 layers become fake-quantized layers; dense rank-reduced layers (without pruned zeros)
    become their factors, unless ``keep_rank`` is false (a gradual pruning schedule is about to
    prune them, which changes their rank as pruning after low rank does). :func:`restored_copy`
    turns the trained copy back.

    Returns:
        The copy and the conversions made, ``{module path: "int8" or "rank"}``.
    """
    work = copy.deepcopy(net)
    work.requires_grad_(True)
    conversions: dict[str, str] = {}
    for path, module in list(work.named_modules()):
        if isinstance(module, QuantizedLinear):
            conversions[path] = "int8"
            replacement: nn.Module = _fake_quant_of(module)
        elif keep_rank and type(module) is nn.Linear and not bool((module.weight == 0).any()):
            rank = _reduced_rank(module.weight)
            if rank is None:
                continue
            conversions[path] = "rank"
            replacement = _factors_of(module, rank)
        else:
            continue
        if path == "":
            return replacement, conversions
        _replace(work, path, replacement)
    return work, conversions


def restored_copy(work: nn.Module, conversions: dict[str, str]) -> nn.Module:
    """A copy of a network :func:`trainable_copy` made, turned back into the original's types."""
    out = copy.deepcopy(work)
    for path, kind in conversions.items():
        module = out.get_submodule(path) if path else out
        if kind == "int8":
            replacement: nn.Module = module.quantized()
        else:
            replacement = nn.Linear(module.in_features, module.out_features)
            with torch.no_grad():
                replacement.weight.copy_(module.second.weight @ module.first.weight)
                replacement.bias.copy_(module.second.bias)
        if path == "":
            return replacement
        _replace(out, path, replacement)
    out.requires_grad_(True)
    return out


def _check_net(ckpt: Checkpoint, net: nn.Module) -> None:
    sizes = ckpt.meta["architecture"]["net"]
    if not isinstance(net, nn.Module):
        raise ValueError(f"net must be a torch module, got {type(net).__name__}")
    try:
        with torch.no_grad():
            out = net(torch.zeros(1, sizes[0]))
    except RuntimeError as exc:
        raise ValueError(f"net does not fit {ckpt.name}: it must map {sizes[0]} inputs to "
                         f"{sizes[-1]} outputs ({str(exc).splitlines()[0]})") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, sizes[-1]):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"net does not fit {ckpt.name}: it must map {sizes[0]} inputs to "
                         f"{sizes[-1]} outputs, got output {shape} for one observation")


def _config(ckpt: Checkpoint, steps: int, seed: int, overrides: dict) -> DDQNConfig | PGConfig:
    """The settings fine-tuning runs the agent's loop with.

    The run's config with ``overrides`` applied and ``seed`` as its seed; for Double DQN the
    exploration probability is constant (``epsilon``) and ``learning_starts`` defaults to
    ``min(config.learning_starts, steps // 10)``.
    """
    algo = ckpt.algo
    allowed = {"ddqn": DDQN_SETTINGS, "pg": PG_SETTINGS}[algo]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(f"{algo} fine-tuning has no setting {unknown[0]!r} "
                         f"(settings: {', '.join(allowed)})")
    saved = ckpt.meta.get("config")
    if not isinstance(saved, dict):
        raise ValueError(f"{ckpt.name}: checkpoint has no training config to continue")
    values = {**saved, "hidden": tuple(saved["hidden"])}
    values.update({k: v for k, v in overrides.items() if k != "epsilon"})
    if algo == "pg":
        for key in ("log_std", "value_net.0.weight"):
            if key not in ckpt.tensors or "value_net" not in ckpt.meta["architecture"]:
                raise ValueError(f"{ckpt.name}: policy-gradient checkpoint has no {key!r}")
        values["total_steps"] = max(values["total_steps"],
                                    values["rollout_steps"] * values["num_envs"])
        return PGConfig(**{**values, "seed": seed})
    config = DDQNConfig(**values)
    epsilon = overrides.get("epsilon", config.eps_end)
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) \
            or not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
    learning_starts = overrides.get("learning_starts", min(config.learning_starts, steps // 10))
    # eps_start == eps_end: epsilon_at gives exactly epsilon at every step.
    return dataclasses.replace(config, seed=seed, learning_starts=learning_starts,
                               eps_start=float(epsilon), eps_end=float(epsilon))


def finetune(ckpt: Checkpoint, net: nn.Module, steps: int, seed: int,
             gradual: PruneSpec | None = None, **overrides) -> FinetuneResult:
    """Continue ``ckpt``'s algorithm from the compressed network ``net`` for ``steps`` env steps.

    The compression holds throughout (see the module docstring); ``net`` is never changed.

    Args:
        ckpt: the checkpoint ``net`` was compressed from; its algorithm, config, environment and
            (policy gradient) value network, log-std and observation statistics are used.
        net: the compressed network, ``compress(policy_from_checkpoint(ckpt).net, spec)``.
        steps: environment steps to fine-tune for; 0 returns an unchanged copy.
        seed: seeds network updates, exploration, sampling and the episodes.
        gradual: a ``schedule=gradual`` pruning step to run while fine-tuning
            (:class:`GradualPruning`); ``net`` is then the network before it
            (``compress(net, steps_before)``, see :func:`split_gradual`) and the result holds
            exactly its sparsity.
        **overrides: settings replacing the run's, for Double DQN one of :data:`DDQN_SETTINGS`
            (``epsilon``: exploration probability, default the run's ``eps_end``;
            ``learning_starts``: default ``min(config.learning_starts, steps // 10)``), for policy
            gradient one of :data:`PG_SETTINGS`.

    Returns:
        The fine-tuned network (same module types and shapes as ``net``) and its costs.

    Raises:
        ValueError: for negative steps, an unknown algorithm or setting, a bad setting's value,
            a network that does not fit the checkpoint's observations and actions, or a
            ``gradual`` that is not a gradual pruning spec.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"fine-tuning steps must be an integer >= 0, got {steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"fine-tuning seed must be an integer >= 0, got {seed!r}")
    if ckpt.algo not in ("ddqn", "pg"):
        raise ValueError(f"cannot fine-tune algorithm {ckpt.algo!r} (known: ddqn, pg)")
    if gradual is not None and not (isinstance(gradual, PruneSpec)
                                    and gradual.schedule == "gradual"):
        raise ValueError(f"gradual must be a prune spec with schedule=gradual, got {gradual!r}")
    _check_net(ckpt, net)
    config = _config(ckpt, steps, seed, overrides)
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    if steps == 0:
        out = copy.deepcopy(net)
        if gradual is not None:
            zero_smallest_weights(weight_layers(out), gradual.amount, gradual.scope)
        return FinetuneResult(out, 0, 0, time.process_time() - cpu_start,
                              time.perf_counter() - wall_start)

    set_seed(seed)
    work, conversions = trainable_copy(net, keep_rank=gradual is None)
    if gradual is None:
        mask = PruningMask(work)
        hooks = Hooks(after_optimizer_step=mask.apply, target=compressed_target)
    else:
        mask = GradualPruning(work, gradual, steps)
        hooks = Hooks(after_optimizer_step=mask.apply, target=compressed_target,
                      log=mask.observe)
    mask.attach()
    if isinstance(config, DDQNConfig):
        run = _finetune_ddqn(ckpt, config, work, steps, hooks)
    else:
        run = _finetune_pg(ckpt, config, work, steps, hooks)
    mask.detach()
    if isinstance(mask, GradualPruning):
        mask.finish()
    else:
        mask.apply()
    out = restored_copy(work, conversions)
    return FinetuneResult(out, run.env_steps, run.updates, time.process_time() - cpu_start,
                          time.perf_counter() - wall_start)


def _finetune_ddqn(ckpt: Checkpoint, config: DDQNConfig, q_net: nn.Module, steps: int,
                   hooks: Hooks) -> LoopResult:
    """Double DQN's loop from the compressed ``q_net`` (trained in place)."""
    env = make_env(ckpt.env_id)
    run = ddqn_loop(config, env, q_net, steps, episode_seed=FINETUNE_SEED_BASE + config.seed,
                    hooks=hooks)
    env.close()
    return run


def _finetune_pg(ckpt: Checkpoint, config: PGConfig, mean_net: nn.Module, steps: int,
                 hooks: Hooks) -> LoopResult:
    """Policy gradient's loop from the compressed ``mean_net`` (trained in place).

    The checkpoint's log-std and value network start; its observation statistics stay frozen.
    """
    envs = make_vec_env(ckpt.env_id, config.num_envs, seed=FINETUNE_SEED_BASE + config.seed)
    if "obs_norm.mean" in ckpt.tensors:
        normalize = ObsNormalizer(ckpt.tensors["obs_norm.mean"].numpy(),
                                  ckpt.tensors["obs_norm.var"].numpy())
    else:
        def normalize(o: np.ndarray) -> np.ndarray:
            return o.astype(np.float32)

    policy = GaussianPolicy(ckpt.meta["architecture"]["net"], 0.0, mean_net=mean_net)
    with torch.no_grad():
        policy.log_std.copy_(ckpt.tensors["log_std"])
    value_net = build_net(ckpt, "value_net")
    run = pg_loop(config, envs, policy, value_net, steps, normalize, hooks=hooks)
    envs.close()
    return run

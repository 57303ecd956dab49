"""Batch-1 decision latency of compressed policies (eager PyTorch, ONNX Runtime) and int8 kernels.

For the LunarLander and HalfCheetah seed-0 checkpoints and the specs dense, quant=8 and
lowrank=0.75, times one decision (``rlcomp.probes.latency``: normalise, forward, action) in eager
PyTorch (``Policy.act``) and in ONNX Runtime (the exported graph, int8 weights dequantized once at
session start). For quant=8 it adds the two other ONNX int8 forms (dequantize on every call;
integer matrix products with dynamically quantized activations) and, in eager PyTorch, our int8
layer against torchao's int8 weight-only quantization (``quantize_(net, Int8WeightOnlyConfig())``)
and against the dense network, with each one's largest output difference from the dense network
(relative to the dense network's largest output, on standard-normal inputs).

Everything runs on one thread. Each variant is timed in ``--rounds`` interleaved rounds of
``--repeats`` calls and the round with the smallest median is reported (its median and p95), which
damps the noise of a shared machine; pin to a core for cleaner figures:
``taskset -c 0 .venv/bin/python benchmarks/compressed_latency.py``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import onnxruntime
import torch

from rlcomp.checkpoint import load_checkpoint, policy_from_checkpoint
from rlcomp.compress import compress
from rlcomp.compress.export import in_features, onnx_session, policy_to_onnx
from rlcomp.nets import as_tensor
from rlcomp.policy import Policy
from rlcomp.probes.latency import LatencyResult, eager_latency, observations, session_latency

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ("LunarLander-v3__ddqn__0", "HalfCheetah-v5__pg__0")
SPECS = ("dense", "quant=8", "lowrank=0.75")


def with_net(policy: Policy, net: torch.nn.Module) -> Policy:
    return Policy(net=net, action=policy.action, obs_norm=policy.obs_norm,
                  action_low=policy.action_low, action_high=policy.action_high)


def torchao_int8(net: torch.nn.Module) -> tuple[torch.nn.Module | None, str]:
    """torchao's int8 weight-only version of ``net`` and a description, or None and the error."""
    try:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        config = Int8WeightOnlyConfig()
        out = copy.deepcopy(net).eval()
        quantize_(out, config)
        with torch.no_grad():
            out(torch.zeros(1, in_features(net)))
        return out, repr(config)
    except Exception as exc:  # report whatever fails (import, CPU support, dispatch)
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]


def variants(policy: Policy, args: argparse.Namespace) -> dict[str, Callable[[], LatencyResult]]:
    """Name -> zero-argument timer, for every figure of one checkpoint."""
    width = in_features(policy.net)
    timed = {"repeats": args.repeats, "warmup": args.warmup}
    out = {}
    for spec in SPECS:
        p = with_net(policy, compress(policy.net, spec))
        session = onnx_session(policy_to_onnx(p))
        out[f"{spec}/eager"] = lambda p=p: eager_latency(p, width, **timed)
        out[f"{spec}/onnx"] = lambda s=session: session_latency(s, width, **timed)
        if spec == "quant=8":
            per_call = onnx_session(policy_to_onnx(p), fold_int8=False)
            integer = onnx_session(policy_to_onnx(p, int8="integer"))
            out[f"{spec}/onnx_dequantize_per_call"] = (
                lambda s=per_call: session_latency(s, width, **timed))
            out[f"{spec}/onnx_integer"] = lambda s=integer: session_latency(s, width, **timed)
    return out


def best_of_rounds(timers: dict[str, Callable[[], LatencyResult]], rounds: int) -> dict:
    """Each timer run ``rounds`` times, interleaved; the round with the smallest median, in us."""
    runs: dict[str, list[LatencyResult]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            runs[name].append(timer())
    best = {name: min(results, key=lambda r: r.median_s) for name, results in runs.items()}
    return {name: {"median_us": round(r.median_s * 1e6, 2), "p95_us": round(r.p95_s * 1e6, 2)}
            for name, r in best.items()}


def relative_difference(net: torch.nn.Module, dense: torch.nn.Module, width: int) -> float:
    """``max |net(x) - dense(x)| / max |dense(x)|`` over 1,000 fixed standard-normal inputs."""
    x = as_tensor(observations(width, 1000, seed=1))
    with torch.no_grad():
        reference = dense(x)
        return float((net(x) - reference).abs().max() / reference.abs().max())


def int8_comparison(policy: Policy, args: argparse.Namespace) -> dict:
    """Eager latency of the dense network, our int8 layers and torchao's int8 weight-only layers."""
    width = in_features(policy.net)
    ours = compress(policy.net, "quant=8")
    ao_net, ao_note = torchao_int8(policy.net)
    nets = {"torch_dense": policy.net, "ours_int8": ours}
    if ao_net is not None:
        nets["torchao_int8_weight_only"] = ao_net
    timed = {"repeats": args.repeats, "warmup": args.warmup}
    timers = {name: (lambda n=net: eager_latency(with_net(policy, n), width, **timed))
              for name, net in nets.items()}
    figures = best_of_rounds(timers, args.rounds)
    for name, net in nets.items():
        figures[name]["rel_diff_vs_dense"] = relative_difference(net, policy.net, width)
    figures["torchao"] = {"ok": ao_net is not None, "note": ao_note}
    if ao_net is not None:
        figures["torchao"]["rel_diff_vs_ours"] = relative_difference(ao_net, ours, width)
    return figures


def print_table(name: str, latency: dict, int8: dict) -> None:
    print(f"{name}  (batch 1, one thread, microseconds: median / p95)")
    for variant, fig in latency.items():
        print(f"  {variant:36s} {fig['median_us']:9.1f} / {fig['p95_us']:9.1f}")
    print("  int8 in eager PyTorch (policy.act):")
    for variant, fig in int8.items():
        if "median_us" in fig:
            print(f"  {variant:36s} {fig['median_us']:9.1f} / {fig['p95_us']:9.1f}"
                  f"   max |out - dense| / max |dense| = {fig['rel_diff_vs_dense']:.2g}")
    print(f"  torchao: {'ok' if int8['torchao']['ok'] else 'FAILED'}: {int8['torchao']['note']}")


def main() -> None:
    """Run the benchmark and print its figures; the last line is JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    figures = {"settings": {**vars(args), "threads": 1, "batch": 1,
                            "report": "round with the smallest median",
                            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                            "torchao": version("torchao")},
               "latency_us": {}, "int8_eager_us": {}}
    for name in CHECKPOINTS:
        policy = policy_from_checkpoint(load_checkpoint(ROOT / "checkpoints" / name))
        figures["latency_us"][name] = best_of_rounds(variants(policy, args), args.rounds)
        figures["int8_eager_us"][name] = int8_comparison(policy, args)
        print_table(name, figures["latency_us"][name], figures["int8_eager_us"][name])
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

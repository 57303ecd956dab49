"""Magnitude pruning: unstructured (weights, global or per layer) and structured (neurons).

A gradual schedule (``schedule=gradual``) prunes here as one-shot does; the schedule itself runs
while fine-tuning (:class:`rlcomp.retrain.finetune.GradualPruning`).
"""

from __future__ import annotations

import torch
from torch import nn

from rlcomp.compress.layers import check_layer_count, linear_from_tensors
from rlcomp.compress.quant import QuantizedLinear
from rlcomp.compress.registry import register
from rlcomp.compress.specs import PruneSpec


def weight_layers(model: nn.Module) -> list[nn.Linear]:
    """Every Linear layer whose weights pruning ranks, in module order (factors included)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def _zero_smallest(weights: list[torch.Tensor], count: int) -> None:
    """Zero the ``count`` entries of smallest magnitude across ``weights`` (ties: lowest index)."""
    if count <= 0:
        return
    flat = torch.cat([w.detach().abs().reshape(-1) for w in weights])
    order = torch.argsort(flat, stable=True)[:count]
    mask = torch.ones_like(flat, dtype=torch.bool)
    mask[order] = False
    start = 0
    for w in weights:
        n = w.numel()
        w.data.mul_(mask[start : start + n].reshape(w.shape).to(w.dtype))
        start += n


def zero_smallest_weights(layers: list[nn.Linear], amount: float, scope: str) -> None:
    """Zero the fraction ``amount`` of smallest-magnitude weights of ``layers``, in place.

    ``scope`` ``global`` ranks across all the layers, ``layer`` within each; ``round(amount * n)``
    weights are zero afterwards (more if more were zero already). In place, for training loops
    that prune as they go; :func:`~rlcomp.compress.registry.compress` calls it on its own copy.
    """
    if scope == "global":
        total = sum(m.weight.numel() for m in layers)
        _zero_smallest([m.weight for m in layers], round(amount * total))
    else:
        for m in layers:
            _zero_smallest([m.weight], round(amount * m.weight.numel()))


def _unstructured(model: nn.Module, spec: PruneSpec) -> nn.Module:
    if not spec.layers:
        zero_smallest_weights(weight_layers(model), spec.amount, spec.scope)
        return model
    # each layer's own amount, ranked within the layer (a factorized layer: across its factors)
    for unit, amount in zip(check_layer_count("prune", spec.layers, model), spec.layers,
                            strict=True):
        zero_smallest_weights(weight_layers(unit), amount, "global")
    return model


def _structured(model: nn.Module, spec: PruneSpec) -> nn.Module:
    """Remove ``round(amount * width)`` neurons of each hidden layer (at least one stays).

    A neuron's score is the L2 norm of its incoming weights; removing it deletes its row (and bias)
    in its layer and its column in the next layer.
    """
    plain_mlp = isinstance(model, nn.Sequential) and all(
        type(m) is nn.Linear or next(m.parameters(), None) is None for m in model)
    if not plain_mlp:
        raise ValueError("structured pruning works on an MLP of plain Linear layers")
    positions = [i for i, m in enumerate(model) if isinstance(m, nn.Linear)]
    for a, b in zip(positions[:-1], positions[1:], strict=True):
        layer, following = model[a], model[b]
        width = layer.out_features
        drop = min(round(spec.amount * width), width - 1)
        if drop <= 0:
            continue
        scores = layer.weight.detach().norm(dim=1)
        keep = torch.sort(torch.argsort(scores, stable=True)[drop:]).values
        model[a] = linear_from_tensors(layer.weight[keep], layer.bias[keep])
        model[b] = linear_from_tensors(following.weight[:, keep], following.bias)
    return model


@register(PruneSpec)
def _prune(model: nn.Module, spec: PruneSpec) -> nn.Module:
    if any(isinstance(m, QuantizedLinear) for m in model.modules()):
        raise ValueError("pruning an int8 network is not supported; prune first, as in "
                         "prune=0.5+quant=8")
    return _structured(model, spec) if spec.structured else _unstructured(model, spec)

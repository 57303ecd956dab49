"""Gradual magnitude pruning while fine-tuning: the cubic schedule, exact target sparsity."""

import pytest
import torch
from test_finetune import DDQN, PG, STEPS, checkpoint
from torch import nn

from rlcomp.checkpoint import policy_from_checkpoint
from rlcomp.compress import compress
from rlcomp.compress.prune import weight_layers
from rlcomp.compress.specs import PruneSpec, parse_spec
from rlcomp.nets import mlp
from rlcomp.retrain.finetune import (
    GRADUAL_END,
    GRADUAL_EVENTS,
    GradualPruning,
    finetune,
    split_gradual,
)


def zeros(net: nn.Module) -> list[int]:
    return [int((m.weight == 0).sum()) for m in weight_layers(net)]


def total(net: nn.Module) -> int:
    return sum(m.weight.numel() for m in weight_layers(net))


def test_the_schedule_is_cubic_and_reaches_the_target_at_its_end():
    pruning = GradualPruning(mlp([4, 8, 2]), PruneSpec(0.8, schedule="gradual"), 1000)
    end = GRADUAL_END * 1000
    assert pruning.sparsity_at(0) == 0.0
    assert pruning.sparsity_at(end / 2) == pytest.approx(0.8 * (1 - 0.5**3))
    assert pruning.sparsity_at(end) == pytest.approx(0.8)
    assert pruning.sparsity_at(1000) == pytest.approx(0.8)
    values = [pruning.sparsity_at(t) for t in range(0, 1001, 10)]
    assert values == sorted(values)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_each_event_prunes_to_the_schedule_and_pruned_weights_stay_pruned(scope):
    torch.manual_seed(0)
    net = mlp([6, 32, 32, 3])
    spec = PruneSpec(0.9, scope=scope, schedule="gradual")
    pruning = GradualPruning(net, spec, 400)
    n, before = total(net), set()
    for step in range(0, 400, 4):
        pruning.observe(step, {})
        with torch.no_grad():  # a training step: every weight moves a little
            for layer in weight_layers(net):
                layer.weight.add_(0.01 * torch.randn_like(layer.weight))
        pruning.apply()
        now = {(i, j) for i, layer in enumerate(weight_layers(net))
               for j in (layer.weight.reshape(-1) == 0).nonzero().reshape(-1).tolist()}
        assert before <= now  # once pruned, always pruned
        before = now
        if scope == "global":
            assert sum(zeros(net)) >= round(pruning.sparsity_at(step) * n) - 1
    assert 1 < pruning.events <= GRADUAL_EVENTS + 1
    pruning.finish()
    if scope == "global":
        assert sum(zeros(net)) == round(0.9 * n)
    else:
        assert zeros(net) == [round(0.9 * m.weight.numel()) for m in weight_layers(net)]


@pytest.mark.parametrize("name", [DDQN, PG])
def test_fine_tuning_with_a_gradual_schedule_ends_at_exactly_the_target(name):
    ckpt = checkpoint(name)
    dense = policy_from_checkpoint(ckpt).net
    spec = parse_spec("prune=0.9,schedule=gradual")[0]
    result = finetune(ckpt, dense, STEPS, seed=0, gradual=spec)
    assert sum(zeros(result.net)) == round(0.9 * total(dense))
    assert [type(m) for m in result.net.modules()] == [type(m) for m in dense.modules()]
    one_shot = compress(dense, "prune=0.9")
    assert any(not torch.equal(a.weight, b.weight)
               for a, b in zip(weight_layers(result.net), weight_layers(one_shot), strict=True))
    again = finetune(ckpt, dense, STEPS, seed=0, gradual=spec)
    assert all(torch.equal(a, b) for a, b in zip(result.net.state_dict().values(),
                                                 again.net.state_dict().values(), strict=True))
    assert not any((dense[0].weight == 0).reshape(-1).tolist())  # the input is untouched


def test_a_gradual_schedule_after_low_rank_holds_its_sparsity():
    ckpt = checkpoint(DDQN)
    before, gradual = split_gradual(parse_spec("lowrank=0.5+prune=0.8,schedule=gradual"))
    start = compress(policy_from_checkpoint(ckpt).net, before)
    result = finetune(ckpt, start, STEPS, seed=0, gradual=gradual)
    assert sum(zeros(result.net)) == round(0.8 * total(result.net))


def test_zero_steps_give_the_one_shot_result():
    ckpt = checkpoint(DDQN)
    dense = policy_from_checkpoint(ckpt).net
    result = finetune(ckpt, dense, 0, seed=0, gradual=parse_spec("prune=0.7,schedule=gradual")[0])
    one_shot = compress(dense, "prune=0.7")
    assert all(torch.equal(a, b) for a, b in zip(result.net.state_dict().values(),
                                                 one_shot.state_dict().values(), strict=True))


def test_split_gradual_finds_the_last_step_and_refuses_it_elsewhere():
    assert split_gradual(parse_spec("prune=0.5")) == (parse_spec("prune=0.5"), None)
    before, step = split_gradual(parse_spec("lowrank=0.3+prune=0.9,schedule=gradual"))
    assert before == parse_spec("lowrank=0.3") and step.amount == 0.9
    with pytest.raises(ValueError, match="last step"):
        split_gradual(parse_spec("prune=0.9,schedule=gradual+quant=8"))


@pytest.mark.parametrize("text, message", [
    ("prune=0.5,schedule=slowly", "schedule must be oneshot or gradual"),
    ("prune=0.5,structured=true,schedule=gradual", "does not combine with structured"),
])
def test_bad_schedules_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_spec(text)


def test_finetune_refuses_a_gradual_argument_that_is_not_one():
    ckpt = checkpoint(DDQN)
    net = policy_from_checkpoint(ckpt).net
    with pytest.raises(ValueError, match="schedule=gradual"):
        finetune(ckpt, net, 10, seed=0, gradual=PruneSpec(0.5))

"""Multiply-accumulates and bytes of weights read per decision (rlcomp.probes.cost)."""

from pathlib import Path

import pytest
import torch
from torch import nn

from rlcomp.checkpoint import load_checkpoint, policy_from_checkpoint
from rlcomp.compress import compress
from rlcomp.compress.layers import FactorizedLinear
from rlcomp.probes.cost import DecisionCost, decision_cost
from rlcomp.probes.size import model_size

ROOT = Path(__file__).resolve().parents[1]
LUNAR = ROOT / "checkpoints" / "LunarLander-v3__ddqn__0"

# The LunarLander Q-network is 8-256-256-4: weights 8*256 + 256*256 + 256*4 = 2048 + 65536 + 1024
# = 68,608 (one MAC each, dense), biases 256 + 256 + 4 = 516, parameters 69,124.
DENSE_MACS = 68_608
BIASES = 516


@pytest.fixture(scope="module")
def lunar_net() -> nn.Module:
    return policy_from_checkpoint(load_checkpoint(LUNAR)).net


def test_hand_built_net_with_zeros():
    # 3-4-2 MLP. MACs 3*4 + 4*2 = 20; zeros: 5 in the first matrix, 1 in the second, so 14 nonzero
    # MACs; bytes (12 + 4 + 8 + 2) float32 entries * 4 = 104.
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].weight.view(-1)[:5] = 0.0
        net[2].weight.fill_(-2.0)
        net[2].weight[1, 3] = 0.0
    cost = decision_cost(net)
    assert cost == DecisionCost(macs=20, macs_nonzero=14, weight_bytes_read=104)
    assert cost.metrics() == {"macs_per_decision": 20.0, "macs_nonzero_per_decision": 14.0,
                              "weight_bytes_read": 104.0}
    assert cost.to_dict() == {"macs": 20, "macs_nonzero": 14, "weight_bytes_read": 104}


def test_factorized_layer_costs_both_factors_and_no_bias_on_the_first():
    # Rank 2 between 10 inputs and 6 outputs: 2 * (10 + 6) = 32 MACs; bytes (20 + 12 + 6) * 4 = 152.
    layer = FactorizedLinear.from_tensors(torch.ones(2, 10), torch.ones(6, 2), torch.zeros(6))
    assert decision_cost(layer) == DecisionCost(macs=32, macs_nonzero=32, weight_bytes_read=152)


def test_dense_checkpoint(lunar_net):
    # Bytes: 69,124 float32 parameters * 4 = 276,496. Trained weights have no exact zeros.
    assert decision_cost(lunar_net) == DecisionCost(DENSE_MACS, DENSE_MACS, 276_496)


def test_pruned_checkpoint_runs_dense_but_skips_half(lunar_net):
    # prune=0.5 zeroes round(0.5 * 68,608) = 34,304 weights of a network that stays dense in memory.
    cost = decision_cost(compress(lunar_net, "prune=0.5"))
    assert cost == DecisionCost(DENSE_MACS, DENSE_MACS - 34_304, 276_496)


def test_structured_pruning_really_shrinks(lunar_net):
    # 8-128-128-4: MACs 8*128 + 128*128 + 128*4 = 1,024 + 16,384 + 512 = 17,920;
    # bytes (17,920 + 128 + 128 + 4) * 4 = 72,720.
    cost = decision_cost(compress(lunar_net, "prune=0.5,structured=true"))
    assert cost == DecisionCost(17_920, 17_920, 72_720)


# lowrank=0.75 keeps rank k = ceil(0.25 * R) of each layer, stored as factors when smaller:
# 8x256 (R 8): k 2, 2 * (8 + 256) = 528; 256x256 (R 256): k 64, 64 * 512 = 32,768;
# 256x4 (R 4): k 1, 1 * (256 + 4) = 260. MACs 528 + 32,768 + 260 = 33,556.
LOWRANK_MACS = 33_556


def test_lowrank_checkpoint(lunar_net):
    # Bytes: (33,556 factor entries + 516 biases) * 4 = 136,288.
    cost = decision_cost(compress(lunar_net, "lowrank=0.75"))
    assert (cost.macs, cost.weight_bytes_read) == (LOWRANK_MACS, 136_288)
    assert cost.macs_nonzero == LOWRANK_MACS


def test_quantized_checkpoint(lunar_net):
    # int8 weights 68,608 bytes + int8 biases 516 + float32 scales: one per output channel
    # (256 + 256 + 4) * 4 = 2,064, one per bias vector 3 * 4 = 12. Total 71,200. Dense MACs.
    net = compress(lunar_net, "quant=8")
    cost = decision_cost(net)
    assert (cost.macs, cost.weight_bytes_read) == (DENSE_MACS, 71_200)
    # Small weights round to int8 zero; the nonzero MACs are the int8 nonzeros.
    assert cost.macs_nonzero == model_size(net).nonzero_weights < DENSE_MACS


def test_fake_quantized_layers_cost_what_float_layers_cost(lunar_net):
    assert decision_cost(compress(lunar_net, "quant=8,mode=qat")) == decision_cost(lunar_net)


def test_composed_lowrank_then_quant(lunar_net):
    # Factors to int8: 33,556 weight bytes + 516 int8 bias bytes; scales per output channel of
    # each factor: (2 + 256) + (64 + 256) + (1 + 4) = 583, * 4 = 2,332; bias scales (second
    # factors only) 3 * 4 = 12. Total 33,556 + 516 + 2,332 + 12 = 36,416.
    net = compress(lunar_net, "lowrank=0.75+quant=8")
    cost = decision_cost(net)
    assert (cost.macs, cost.weight_bytes_read) == (LOWRANK_MACS, 36_416)
    assert cost.macs_nonzero == model_size(net).nonzero_weights


def test_composed_prune_then_quant(lunar_net):
    # Half the weights pruned, then int8: bytes as quant=8 alone, nonzeros at most 68,608 - 34,304.
    net = compress(lunar_net, "prune=0.5+quant=8")
    cost = decision_cost(net)
    assert (cost.macs, cost.weight_bytes_read) == (DENSE_MACS, 71_200)
    assert cost.macs_nonzero == model_size(net).nonzero_weights <= 34_304


class Wrapper(nn.Module):
    """A container whose forward pass the counts cannot know."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(2, 2)

    def forward(self, x):
        return self.inner(self.inner(x))


@pytest.mark.parametrize("module, name", [
    (nn.Sequential(nn.Linear(2, 2), nn.Conv1d(1, 1, 1)), "Conv1d"),
    (nn.Sequential(nn.LayerNorm(2)), "LayerNorm"),
    (Wrapper(), "Wrapper"),
])
def test_unknown_layers_raise_type_error_naming_the_type(module, name):
    with pytest.raises(TypeError, match=name):
        decision_cost(module)


def test_parameter_free_layers_cost_nothing():
    assert decision_cost(nn.Sequential(nn.Tanh(), nn.Identity())) == DecisionCost(0, 0, 0)

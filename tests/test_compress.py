import dataclasses
import hashlib
import math

import pytest
import torch
from torch import nn

from rlcomp.compress import (
    FactorizedLinear,
    FakeQuantLinear,
    LowRankSpec,
    PruneSpec,
    QuantizedLinear,
    QuantSpec,
    compress,
    format_spec,
    kept_rank,
    parse_spec,
    quantize_per_channel,
)
from rlcomp.nets import mlp


def qnet(seed=0):
    torch.manual_seed(seed)
    return mlp([8, 256, 256, 4])


def digest(model):
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.numpy().tobytes())
    return h.hexdigest()


def linears(model):
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


# --- specs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "dense", "prune=0.5", "prune=0.0", "prune=0.5,scope=layer", "prune=0.9,structured=true",
    "lowrank=0.3", "lowrank=0.75,keep_io=true", "quant=8", "quant=8,mode=qat",
    "lowrank=0.3+prune=0.5", "prune=0.25+lowrank=0.5+quant=8",
])
def test_spec_text_round_trips(text):
    specs = parse_spec(text)
    assert format_spec(specs) == text
    assert parse_spec(format_spec(specs)) == specs


def test_spec_text_is_canonical():
    assert format_spec(parse_spec(" prune = 0.50 , scope=global ")) == "prune=0.5"
    assert format_spec(parse_spec("lowrank=0.3,keep_io=false")) == "lowrank=0.3"
    assert parse_spec("lowrank=0.3+prune=0.5") == (LowRankSpec(0.3), PruneSpec(0.5))


@pytest.mark.parametrize("text, message", [
    ("prune=1.5", "prune amount must be in [0, 1), got 1.5"),
    ("prune=-0.1", "prune amount must be in [0, 1), got -0.1"),
    ("lowrank=1", "lowrank reduction must be in [0, 1), got 1"),
    ("quant=3", "quant bits must be 8, 4 or 2, got 3"),
    ("prune=abc", "prune amount must be a number, got 'abc'"),
    ("prune=nan", "prune amount must be in [0, 1), got nan"),
    ("shrink=0.5", "unknown compression method 'shrink'"),
    ("prune", "prune needs a level"),
    ("prune=0.5,scope=row", "prune scope must be global or layer, got 'row'"),
    ("prune=0.5,colour=red", "prune has no option 'colour'"),
    ("prune=0.5,scope=global,scope=layer", "prune option 'scope' is given twice"),
    ("lowrank=0.3,keep_io", "lowrank option 'keep_io' needs a value"),
    ("lowrank=0.5,keep_io=maybe", "lowrank keep_io must be true or false, got 'maybe'"),
    ("quant=8,mode=fast", "quant mode must be ptq or qat, got 'fast'"),
    ("", "empty spec"),
])
def test_bad_spec_text_is_refused_with_its_reason(text, message):
    with pytest.raises(ValueError) as info:
        parse_spec(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_specs_validate_on_construction():
    with pytest.raises(ValueError, match=r"in \[0, 1\), got 1"):
        PruneSpec(1.0)
    with pytest.raises(TypeError):
        LowRankSpec(True)
    with pytest.raises(TypeError):
        QuantSpec(bits=8.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        PruneSpec(0.5).amount = 0.1


# --- unstructured pruning ------------------------------------------------------------------------

@pytest.mark.parametrize("amount", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_global_pruning_zeroes_exactly_the_smallest_weights(amount):
    model = qnet()
    pruned = compress(model, PruneSpec(amount))
    before = torch.cat([m.weight.detach().reshape(-1) for m in linears(model)])
    after = torch.cat([m.weight.detach().reshape(-1) for m in linears(pruned)])
    expected = round(amount * before.numel())
    zeroed = (after == 0) & (before != 0)
    assert int(zeroed.sum()) == expected
    if 0 < expected < before.numel():
        assert before[zeroed].abs().max() <= before[~zeroed].abs().min()
    assert torch.equal(after[~zeroed], before[~zeroed])
    for m0, m1 in zip(linears(model), linears(pruned), strict=True):
        assert torch.equal(m0.bias, m1.bias)


def test_global_pruning_ranks_across_layers():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    model[0].weight.data = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    model[2].weight.data = torch.tensor([[0.5, 5.0], [6.0, 0.25]])
    pruned = compress(model, "prune=0.5")
    # The four smallest of |w| = 1 2 3 4 | 0.5 5 6 0.25 are 0.25, 0.5, 1 and 2.
    assert torch.equal(pruned[0].weight, torch.tensor([[0.0, 0.0], [3.0, 4.0]]))
    assert torch.equal(pruned[2].weight, torch.tensor([[0.0, 5.0], [6.0, 0.0]]))


def test_layer_pruning_prunes_each_layer_by_the_same_fraction():
    model = qnet()
    pruned = compress(model, "prune=0.3,scope=layer")
    for m0, m1 in zip(linears(model), linears(pruned), strict=True):
        zeroed = int(((m1.weight == 0) & (m0.weight != 0)).sum())
        assert zeroed == round(0.3 * m0.weight.numel())
        kept = m1.weight != 0
        assert m0.weight[~kept].abs().max() <= m0.weight[kept].abs().min()


# --- structured pruning --------------------------------------------------------------------------

def test_structured_pruning_removes_the_weakest_neurons_and_computes_the_masked_function():
    model = qnet()
    pruned = compress(model, "prune=0.25,structured=true")
    assert [m.out_features for m in linears(pruned)] == [192, 192, 4]
    # The removed neurons are those with the smallest incoming-weight norms.
    norms = model[0].weight.detach().norm(dim=1)
    removed = torch.argsort(norms, stable=True)[:64]
    kept_norms = pruned[0].weight.detach().norm(dim=1)
    assert norms[removed].max() <= kept_norms.min()
    # Masking the same neurons in the full network gives the same outputs.
    masked = qnet()
    for a, b in ((0, 2), (2, 4)):
        scores = masked[a].weight.detach().norm(dim=1)
        gone = torch.argsort(scores, stable=True)[: round(0.25 * masked[a].out_features)]
        masked[a].weight.data[gone] = 0.0
        masked[a].bias.data[gone] = 0.0
        masked[b].weight.data[:, gone] = 0.0
    x = torch.randn(64, 8)
    torch.testing.assert_close(pruned(x), masked(x), rtol=1e-5, atol=1e-5)


# --- low rank -----------------------------------------------------------------------------------

@pytest.mark.parametrize("full, reduction, rank", [
    (256, 0.0, 256), (256, 0.5, 128), (256, 0.75, 64), (8, 0.7, 3), (4, 0.99, 1), (10, 0.7, 3),
])
def test_kept_rank(full, reduction, rank):
    assert kept_rank(full, reduction) == rank


@pytest.mark.parametrize("reduction", [0.1, 0.5, 0.75, 0.9])
def test_low_rank_error_is_the_norm_of_the_discarded_singular_values(reduction):
    model = qnet()
    approx = compress(model, LowRankSpec(reduction))
    originals = [m for m in model if isinstance(m, nn.Linear)]
    new_layers = [m for m in approx if isinstance(m, nn.Linear | FactorizedLinear)]
    for layer, new in zip(originals, new_layers, strict=True):
        w = layer.weight.detach().double()
        if isinstance(new, FactorizedLinear):
            w_k = new.second.weight.detach().double() @ new.first.weight.detach().double()
        else:
            w_k = new.weight.detach().double()
        s = torch.linalg.svdvals(w)
        k = kept_rank(min(w.shape), reduction)
        expected = math.sqrt(float((s[k:] ** 2).sum()))
        assert float(torch.linalg.matrix_norm(w - w_k)) == pytest.approx(expected, rel=1e-4,
                                                                          abs=1e-5)
        assert int(torch.linalg.matrix_rank(w_k.float())) <= k
        assert torch.equal(new.second.bias if isinstance(new, FactorizedLinear) else new.bias,
                           layer.bias)


def test_low_rank_runs_as_factors_only_when_smaller():
    approx = compress(qnet(), "lowrank=0.75")
    kinds = [type(m).__name__ for m in approx if not isinstance(m, nn.ReLU)]
    # 8x256 at rank 2 and 256x4 at rank 1 are smaller as factors; 256x256 at rank 64 too.
    assert kinds == ["FactorizedLinear", "FactorizedLinear", "FactorizedLinear"]
    dense = compress(qnet(), "lowrank=0.1")
    assert all(isinstance(m, nn.Linear) for m in dense if not isinstance(m, nn.ReLU))


def test_keep_io_leaves_first_and_last_layers_untouched():
    model = qnet()
    approx = compress(model, "lowrank=0.75,keep_io=true")
    assert torch.equal(approx[0].weight, model[0].weight)
    assert torch.equal(approx[4].weight, model[4].weight)
    assert isinstance(approx[2], FactorizedLinear)


def test_full_rank_keeps_the_function():
    model = qnet()
    x = torch.randn(16, 8)
    torch.testing.assert_close(compress(model, "lowrank=0.0")(x), model(x), rtol=1e-5, atol=1e-5)


# --- composition and purity ----------------------------------------------------------------------

def test_composition_applies_left_to_right_and_prunes_the_factors():
    model = qnet()
    both = compress(model, "lowrank=0.5+prune=0.5")
    step = compress(compress(model, "lowrank=0.5"), "prune=0.5")
    assert digest(both) == digest(step)
    weights = torch.cat([m.weight.detach().reshape(-1) for m in linears(both)])
    assert int((weights == 0).sum()) == round(0.5 * weights.numel())
    assert any(isinstance(m, FactorizedLinear) for m in both)


@pytest.mark.parametrize("spec", ["prune=0.5", "prune=0.5,scope=layer", "prune=0.5,structured=true",
                                  "lowrank=0.5", "lowrank=0.5+prune=0.5", "dense", "quant=8",
                                  "quant=8,mode=qat", "prune=0.5+quant=8"])
def test_compress_never_mutates_its_input(spec):
    model = qnet()
    before = digest(model)
    out = compress(model, spec)
    assert digest(model) == before
    assert out is not model


# --- quantization -------------------------------------------------------------------------------

def test_int8_error_is_at_most_half_a_step_and_sqnr_is_high():
    model = qnet()
    quantized = compress(model, "quant=8")
    layers = [m for m in quantized if isinstance(m, QuantizedLinear)]
    assert len(layers) == 3
    for layer, original in zip(layers, linears(model), strict=True):
        w = original.weight.detach()
        assert layer.qweight.dtype == torch.int8
        assert int(layer.qweight.abs().max()) == 127
        err = (layer.dequantized_weight() - w).abs()
        assert bool((err <= layer.scale[:, None] / 2 + 1e-7).all())
        noise = (w - layer.dequantized_weight()).pow(2).sum()
        sqnr_db = 10 * math.log10(float(w.pow(2).sum() / noise))
        assert sqnr_db > 35.0
        b = original.bias.detach()
        assert layer.qbias.dtype == torch.int8 and int(layer.qbias.abs().max()) == 127
        assert bool(((layer.bias - b).abs() <= layer.bias_scale / 2 + 1e-7).all())
        torch.testing.assert_close(layer.bias_scale, b.abs().max() / 127)


def test_quantization_by_hand():
    q, scale = quantize_per_channel(torch.tensor([[1.27, -0.635, 0.0], [0.0, 0.0, 0.0]]))
    assert torch.equal(q, torch.tensor([[127, -64, 0], [0, 0, 0]], dtype=torch.int8))
    torch.testing.assert_close(scale, torch.tensor([0.01, 1.0]))


def test_qat_forward_is_the_int8_network_and_gradients_pass_straight_through():
    model = qnet()
    ptq, qat = compress(model, "quant=8"), compress(model, "quant=8,mode=qat")
    assert all(isinstance(m, FakeQuantLinear) for m in linears(qat))
    x = torch.randn(32, 8)
    with torch.no_grad():
        assert torch.equal(qat(x), ptq(x))
    torch.testing.assert_close(qat(x), ptq(x), rtol=0, atol=1e-6)
    qat(x).sum().backward()
    for m in linears(qat):
        assert m.weight.grad is not None and m.weight.grad.abs().sum() > 0
        assert m.bias.grad is not None and m.bias.grad.abs().sum() > 0


@pytest.mark.parametrize(("spec", "message"), [
    ("quant=8+prune=0.5", "prune first"), ("quant=8+lowrank=0.5", "factorize first"),
    ("quant=8,mode=qat+lowrank=0.5", "factorize first"), ("quant=8+quant=8", "already quantized"),
])
def test_steps_after_quantization_are_refused_not_skipped(spec, message):
    with pytest.raises(ValueError, match=message):
        compress(qnet(), spec)


def test_quantization_composes_after_low_rank():
    model = qnet()
    both = compress(model, "lowrank=0.75+quant=8")
    assert not linears(both)  # every Linear, factors included, is now int8
    x = torch.randn(8, 8)
    torch.testing.assert_close(both(x), compress(model, "lowrank=0.75")(x), rtol=0.05, atol=0.05)


def test_structured_pruning_refuses_a_factorized_network():
    with pytest.raises(ValueError, match="plain Linear layers"):
        compress(qnet(), "lowrank=0.9+prune=0.5,structured=true")


def test_zero_rank_reduction_is_the_identity():
    model = qnet()
    assert digest(compress(model, "lowrank=0")) == digest(model)
    assert digest(compress(model, "lowrank=0+prune=0")) == digest(model)

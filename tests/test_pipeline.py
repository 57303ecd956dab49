"""The whole pipeline of a spec: pure steps, distillation, gradual pruning, fine-tuning."""

import numpy as np
import pytest
import torch
from test_finetune import DDQN, PG, checkpoint
from torch import nn

from rlcomp.checkpoint import policy_from_checkpoint
from rlcomp.compress import QuantizedLinear, compress
from rlcomp.compress.specs import parse_spec
from rlcomp.retrain.pipeline import check_spec, compressed_policy, split_distill

SMALL = "steps=2000"


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("spec", ["dense", "prune=0.5", "lowrank=0.3+quant=4"])
def test_pure_specs_give_what_compress_gives(spec):
    ckpt = checkpoint(DDQN)
    made = compressed_policy(ckpt, spec, seed=0)
    assert same_weights(made.policy.net, compress(policy_from_checkpoint(ckpt).net, spec))
    assert set(made.costs) == {"compress_cpu_seconds"}


@pytest.mark.parametrize("name, width", [(DDQN, 4), (PG, 6)])
def test_a_student_replaces_the_network_and_later_steps_compress_it(name, width):
    ckpt = checkpoint(name)
    made = compressed_policy(ckpt, f"distill=8x8,{SMALL}+quant=8", seed=0)
    layers = [m for m in made.policy.net.modules() if isinstance(m, QuantizedLinear)]
    assert [(m.in_features, m.out_features) for m in layers][1:] == [(8, 8), (8, width)]
    assert made.costs["distill_env_steps"] == 2000
    assert made.costs["distill_gradient_steps"] == 250
    assert made.costs["distill_cpu_seconds"] > 0
    teacher, student = policy_from_checkpoint(ckpt), made.policy
    assert (student.obs_norm is None) == (teacher.obs_norm is None)
    if teacher.obs_norm is not None:  # the student sees what the teacher saw
        assert np.array_equal(student.obs_norm.mean, teacher.obs_norm.mean)
        assert np.array_equal(student.obs_norm.var, teacher.obs_norm.var)
    seen = []
    again = compressed_policy(ckpt, f"distill=8x8,{SMALL}+quant=8", seed=0,
                              progress=lambda done, total: seen.append((done, total)))
    assert same_weights(made.policy.net, again.policy.net)  # reporting progress changes nothing
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == 2000 and {t for _, t in seen} == {2000}
    other = compressed_policy(ckpt, f"distill=8x8,{SMALL}+quant=8", seed=1)
    assert not same_weights(made.policy.net, other.policy.net)


def test_steps_before_a_distillation_compress_the_teacher():
    ckpt = checkpoint(DDQN)
    plain = compressed_policy(ckpt, f"distill=8,{SMALL}", seed=0)
    from_pruned = compressed_policy(ckpt, f"prune=0.9+distill=8,{SMALL}", seed=0)
    assert not same_weights(plain.policy.net, from_pruned.policy.net)
    assert not any(isinstance(m, QuantizedLinear) for m in from_pruned.policy.net.modules())


def test_fine_tuning_follows_the_student_and_runs_a_gradual_schedule():
    ckpt = checkpoint(DDQN)
    made = compressed_policy(ckpt, f"distill=16x16,{SMALL}+prune=0.5,schedule=gradual", seed=0,
                             finetune_steps=300)
    weights = [m.weight for m in made.policy.net.modules() if isinstance(m, nn.Linear)]
    total = sum(w.numel() for w in weights)
    assert sum(int((w == 0).sum()) for w in weights) == round(0.5 * total)
    assert made.costs["finetune_env_steps"] == 300
    assert "distill_env_steps" in made.costs


@pytest.mark.parametrize("text, message", [
    ("distill=8+distill=4", "distil once"),
    ("prune=0.5,schedule=gradual+quant=8", "last step"),
])
def test_specs_no_pipeline_can_run_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        check_spec(parse_spec(text))
    with pytest.raises(ValueError, match=message):
        compressed_policy(checkpoint(DDQN), text, seed=0)


def test_compress_alone_refuses_a_distillation_and_says_where_to_go():
    with pytest.raises(ValueError, match="compressed_policy"):
        compress(policy_from_checkpoint(checkpoint(DDQN)).net, "distill=8")


def test_split_distill():
    specs = parse_spec("prune=0.5+distill=16x16+quant=8")
    before, student, after = split_distill(specs)
    assert before == specs[:1] and student.sizes == (16, 16) and after == specs[2:]
    assert split_distill(parse_spec("quant=8")) == (parse_spec("quant=8"), None, ())

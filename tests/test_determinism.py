"""The same config and seed train bit-identical agents; another seed trains another agent."""

import pytest
import torch

from rlcomp.agents.pg import GaussianPolicy
from rlcomp.agents.train import TRAINERS, make_config, train_and_save
from rlcomp.checkpoint import load_checkpoint, policy_from_checkpoint
from rlcomp.envs import set_seed
from rlcomp.nets import mlp
from rlcomp.rollout import evaluate_policy

SETTINGS = {
    "ddqn": dict(env_id="LunarLander-v3", total_steps=1500, hidden=(32, 32), batch_size=32,
                 learning_starts=200, target_update_interval=250, eval_interval=750,
                 eval_episodes=2, final_eval_episodes=3),
    "pg": dict(env_id="HalfCheetah-v5", total_steps=2048, hidden=(32, 32), rollout_steps=256,
               update_epochs=2, lr=1e-3, eval_interval=1024, eval_episodes=1,
               final_eval_episodes=1),
}


@pytest.fixture(scope="module", params=list(SETTINGS))
def runs(request, tmp_path_factory):
    """Train twice with seed 0 (once through ``train_and_save``) and once with seed 1."""
    algo = request.param
    config = make_config(algo, seed=0, **SETTINGS[algo])
    path, first = train_and_save(algo, config, tmp_path_factory.mktemp(algo))
    second = TRAINERS[algo](config)
    other = TRAINERS[algo](make_config(algo, seed=1, **SETTINGS[algo]))
    return algo, config, path, first, second, other


def test_same_seed_gives_identical_weights(runs):
    _, _, _, first, second, _ = runs
    assert first.tensors.keys() == second.tensors.keys()
    for key in first.tensors:
        assert torch.equal(first.tensors[key], second.tensors[key]), key


def test_same_seed_gives_identical_returns_and_curves(runs):
    _, _, _, first, second, _ = runs
    assert first.curve == second.curve
    assert first.selected_step == second.selected_step
    assert first.train_steps == second.train_steps
    for key in ("returns", "lengths", "mean_return", "std_return"):
        assert first.final_eval[key] == second.final_eval[key], key


def test_different_seed_gives_different_weights(runs):
    _, _, _, first, _, other = runs
    assert first.tensors.keys() == other.tensors.keys()
    weights = [k for k in first.tensors if k.endswith("weight")]
    assert weights
    for key in weights:
        assert not torch.equal(first.tensors[key], other.tensors[key]), key
    assert first.curve["episode_return"] != other.curve["episode_return"]


def test_training_changed_the_initial_weights(runs):
    # Guards against trivial determinism: the compared networks went through gradient steps.
    algo, config, _, first, _, _ = runs
    sizes = [first.tensors["net.0.weight"].shape[1], *config.hidden,
             first.tensors[f"net.{2 * len(config.hidden)}.weight"].shape[0]]
    set_seed(config.seed)
    if algo == "ddqn":
        initial = mlp(sizes).state_dict()
    else:
        initial = GaussianPolicy(sizes, config.log_std_init).mean_net.state_dict()
    changed = [k for k, v in initial.items() if not torch.equal(first.tensors[f"net.{k}"], v)]
    assert changed == list(initial)


def test_checkpoint_reproduces_final_evaluation(runs):
    # For pg this covers the saved observation normaliser and action bounds too.
    algo, config, path, first, _, _ = runs
    ckpt = load_checkpoint(path, env_id=config.env_id)
    assert ckpt.algo == algo
    policy = policy_from_checkpoint(ckpt)
    if algo == "pg":
        assert policy.obs_norm is not None and policy.action_low is not None
    again = evaluate_policy(policy, ckpt.env_id, config.final_eval_episodes,
                            seed=config.final_eval_seed)
    assert again.returns == first.final_eval["returns"]
    assert again.lengths == first.final_eval["lengths"]

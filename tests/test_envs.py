"""Environment ids, vectorized environments and seeding."""

import random

import numpy as np
import pytest
import torch

from rlcomp.envs import ENV_ALIASES, STUDY_ENVS, make_vec_env, resolve_env_id, set_seed


@pytest.mark.parametrize(
    ("old", "new"),
    [("LunarLander-v2", "LunarLander-v3"), ("HalfCheetah-v2", "HalfCheetah-v5")],
)
def test_poster_ids_map_to_successors_with_one_notice(old, new, capsys):
    assert resolve_env_id(old) == new
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert old in lines[0] and new in lines[0]


def test_alias_notice_can_be_silenced(capsys):
    assert resolve_env_id("LunarLander-v2", notify=False) == "LunarLander-v3"
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("env_id", [*STUDY_ENVS, "CartPole-v1", "Pendulum-v1"])
def test_registered_ids_pass_through_silently(env_id, capsys):
    assert resolve_env_id(env_id) == env_id
    assert capsys.readouterr().err == ""


def test_aliases_point_at_study_envs():
    assert set(ENV_ALIASES.values()) == set(STUDY_ENVS)


def test_unknown_id_names_it():
    with pytest.raises(ValueError, match="NoSuchLander-v9"):
        resolve_env_id("NoSuchLander-v9")


def test_non_string_id_is_refused():
    with pytest.raises(TypeError):
        resolve_env_id(3)


@pytest.mark.parametrize("seed", [-1, -100, 1.5, True, "0"])
def test_set_seed_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed"):
        set_seed(seed)


def test_set_seed_makes_draws_repeat():
    set_seed(123)
    first = (random.random(), np.random.rand(), torch.rand(3))
    set_seed(123)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[:2] == second[:2]
    assert torch.equal(first[2], second[2])
    assert torch.get_num_threads() == 1


def test_make_vec_env_gives_one_observation_per_env():
    envs = make_vec_env("CartPole-v1", 3, seed=5)
    try:
        obs = envs.initial_obs
        assert obs.shape == (3, 4)
        # Each sub-environment is reset with its own seed, so the starts differ.
        assert len({tuple(row) for row in obs.tolist()}) == 3
        next_obs, rewards, terminated, truncated, _ = envs.step(np.array([0, 1, 0]))
        assert next_obs.shape == (3, 4)
        assert rewards.shape == terminated.shape == truncated.shape == (3,)
    finally:
        envs.close()


def test_make_vec_env_is_seeded():
    a, b = make_vec_env("Pendulum-v1", 2, seed=7), make_vec_env("Pendulum-v1", 2, seed=7)
    c = make_vec_env("Pendulum-v1", 2, seed=8)
    try:
        np.testing.assert_array_equal(a.initial_obs, b.initial_obs)
        assert not np.array_equal(a.initial_obs, c.initial_obs)
        # Seeds seed + i: the second env of seed 7 starts where the first env of seed 8 does.
        np.testing.assert_array_equal(a.initial_obs[1], c.initial_obs[0])
    finally:
        for envs in (a, b, c):
            envs.close()


def test_make_vec_env_rejects_zero_envs():
    with pytest.raises(ValueError, match="num_envs"):
        make_vec_env("CartPole-v1", 0, seed=0)

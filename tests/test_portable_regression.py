"""Portable regression checks of the compressed agents: pass on any x86-64 CPU, fail on a change.

The reference values in ``tests/data/regression.json`` are recorded by
``benchmarks/record_regression.py`` (never typed by hand); :mod:`rlcomp.probes.regression` says
what is compared how:

- exact: compressed file bytes and SHA-256 (specs without low rank), parameter / nonzero / scale
  counts, discrete actions on 64 recorded observations, LunarLander per-episode returns;
- network outputs on the recorded observations: ``|y - y_ref| <= 1e-6 + 1e-5 |y_ref|``;
- HalfCheetah mean return over 5 episodes: within a band of 4 x the largest deviation measured when
  the recording re-ran the evaluation 5 times with 1e-6 relative observation noise (floor
  1% |return| + 1); the band of each spec is printed with the check.

The mutation tests below change a compressor very slightly (one more weight pruned, one int8
weight one step off, one int8 scale one step (1/127) or one float32 ulp off) and assert that these
same checks fail: every mutation fails the exact checks, and all but the one-ulp scale fail the
network-output check at rtol 1e-5 too.
Simulate another CPU vendor with ``RLCOMP_PERTURB_OBS=1e-9`` (HalfCheetah observations;
``make test-perturbed``): every check here still passes. They pass with ``MKL_CBWR=COMPATIBLE``
(MKL's vendor-neutral matrix products) too.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rlcomp import envs
from rlcomp.compress import registry
from rlcomp.compress.quant import QMAX, QuantizedLinear
from rlcomp.compress.specs import PruneSpec, QuantSpec
from rlcomp.envs import CHAOTIC_ENVS
from rlcomp.probes import regression

DATA = regression.ROOT / "tests" / "data" / "regression.json"
RECORD = "re-record on purpose: .venv/bin/python benchmarks/record_regression.py, review, commit"


@pytest.fixture(scope="module")
def reference() -> dict:
    values = json.loads(DATA.read_text())
    assert values["settings"] == regression.settings(), f"settings changed: {RECORD}"
    return values


CASES = [(name, spec) for name in regression.CHECKPOINTS for spec in regression.SPECS]


def _case(reference: dict, name: str, spec: str) -> tuple[dict, dict]:
    agent = reference["agents"][name]
    return agent, agent["specs"][spec]


def test_reference_covers_every_case_and_is_unperturbed(reference):
    assert sorted(reference["agents"]) == sorted(regression.CHECKPOINTS)
    for agent in reference["agents"].values():
        assert sorted(agent["specs"]) == sorted(regression.SPECS)
        assert len(agent["observations"]) == regression.OBS_ROWS
        assert agent["chaotic"] == (agent["env_id"] in CHAOTIC_ENVS)
        for spec, case in agent["specs"].items():
            assert ("sha256" in case["exact"]) == regression.digest_is_portable(spec)
            if agent["chaotic"]:
                spread = case["spread"]
                assert spread["scale"] == regression.SPREAD_SCALE
                assert len(spread["perturbed_mean_returns"]) == regression.SPREAD_RUNS
                mean = float(np.mean(case["returns"]))
                deviations = [m - mean for m in spread["perturbed_mean_returns"]]
                assert spread["band"] == regression.band(mean, deviations)


def test_discrete_actions_are_far_from_ties(reference):
    """Exact discrete actions are portable only if no recorded observation is near a Q-value tie.

    Another CPU's Q-values differ by an ulp or two; the smallest relative gap between the best and
    second-best Q-value over the recorded observations must exceed ``TIE_RTOL`` (1e-6).
    """
    for agent in reference["agents"].values():
        for spec, case in agent["specs"].items():
            if "actions" in case:
                gap = regression.min_top2_gap(case["outputs"])
                assert gap > regression.TIE_RTOL, f"{spec}: relative top-2 gap {gap:.2e}"


@pytest.mark.parametrize("name, spec", CASES)
def test_compressed_agent_matches_reference(reference, name, spec):
    agent, want = _case(reference, name, spec)
    if regression.load_checkpoint(regression.ROOT / name).digest != agent["checkpoint_digest"]:
        pytest.fail(f"{name} changed since the values were recorded: {RECORD}")
    got = regression.measure(name, spec, regression.observations_of(agent))
    problems = regression.mismatches(want, got, agent["chaotic"])
    if agent["chaotic"]:
        spread = want["spread"]
        print(f"{name} {spec}: mean return {np.mean(got['returns']):.2f}, recorded "
              f"{np.mean(want['returns']):.2f} +- {spread['band']:.2f} (the larger of 4 x the "
              f"largest deviation {spread['max_abs_deviation']:.2f} of {spread['runs']} runs with "
              f"{spread['scale']:g} relative observation noise and 1% |return| + 1)")
    assert not any(problems.values()), f"{name} {spec}: {problems}; if intended, {RECORD}"


# Mutations: a compressor changed very slightly must fail the checks above. ----------------------

def _prune_one_more(original):
    def mutated(model, spec):
        model = original(model, spec)
        weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
        flat = torch.cat([w.detach().abs().reshape(-1) for w in weights])
        flat[flat == 0] = float("inf")
        index = int(torch.argmin(flat))
        for w in weights:
            if index < w.numel():
                w.data.view(-1)[index] = 0.0
                break
            index -= w.numel()
        return model
    return mutated


def _first_quantized(model) -> QuantizedLinear:
    return next(m for m in model.modules() if isinstance(m, QuantizedLinear))


def _int8_weight_one_step(original):
    def mutated(model, spec):
        model = original(model, spec)
        q = _first_quantized(model).qweight.view(-1)
        i = int(torch.argmax((q.abs() < 127).to(torch.int8) * q.abs().to(torch.int8)))
        q[i] += 1 if q[i] >= 0 else -1  # the largest non-saturated weight, one step outwards
        return model
    return mutated


def _scale_one_ulp(original):
    def mutated(model, spec):
        model = original(model, spec)
        scale = _first_quantized(model).scale
        scale[0] = torch.nextafter(scale[0], torch.tensor(float("inf")))
        return model
    return mutated


def _scale_one_step(original):
    def mutated(model, spec):
        model = original(model, spec)
        scale = _first_quantized(model).scale
        scale[0] = scale[0] * (QMAX + 1) / QMAX  # as if the row's largest |w| were a step more
        return model
    return mutated


MUTATIONS = {
    # name: (spec type, wrapper, spec, checks that must fail for LunarLander, for HalfCheetah)
    "one more weight pruned": (PruneSpec, _prune_one_more, "prune=0.5",
                               {"exact", "outputs"}, {"exact", "outputs"}),
    "one int8 weight one step off": (QuantSpec, _int8_weight_one_step, "quant=8",
                                     {"exact", "outputs"}, {"exact", "outputs"}),
    "one int8 scale one step off": (QuantSpec, _scale_one_step, "quant=8",
                                    {"exact", "outputs"}, {"exact", "outputs"}),
    "one int8 scale one ulp off": (QuantSpec, _scale_one_ulp, "quant=8", {"exact"}, {"exact"}),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
@pytest.mark.parametrize("name", regression.CHECKPOINTS)
def test_slightly_changed_compressor_fails_the_checks(reference, monkeypatch, mutation, name):
    spec_type, wrap, spec, fail_discrete, fail_chaotic = MUTATIONS[mutation]
    monkeypatch.setitem(registry.COMPRESSORS, spec_type, wrap(registry.COMPRESSORS[spec_type]))
    agent, want = _case(reference, name, spec)
    got = regression.measure(name, spec, regression.observations_of(agent))
    problems = regression.mismatches(want, got, agent["chaotic"])
    failed = {check for check, found in problems.items() if found}
    expected = fail_chaotic if agent["chaotic"] else fail_discrete
    assert expected <= failed, f"{mutation} on {name}: only {failed} failed: {problems}"
    print(f"{mutation} on {name} {spec}: caught by {sorted(failed)}")


def test_band_catches_a_different_policy(reference):
    """The HalfCheetah band is narrow enough that a different compression level falls outside."""
    name = next(n for n, a in reference["agents"].items() if a["chaotic"])
    agent = reference["agents"][name]
    dense = agent["specs"]["dense"]
    for spec in ("prune=0.9+quant=8", "lowrank=0.5"):
        other = agent["specs"][spec]
        assert regression.return_mismatches(dense, other, chaotic=True), spec


# The perturbation that simulates another CPU: RLCOMP_PERTURB_OBS. ---------------------------------

@pytest.mark.parametrize("text, seed, expected", [
    ("", "", None), ("0", "", None), ("1e-9", "", envs.Perturbation(1e-9, 0)),
    (" 1e-6 ", "7", envs.Perturbation(1e-6, 7)),
])
def test_perturbation_is_read_from_the_environment(monkeypatch, text, seed, expected):
    monkeypatch.setenv(envs.PERTURB_VARIABLE, text)
    monkeypatch.setenv(envs.PERTURB_SEED_VARIABLE, seed)
    assert envs.perturbation() == expected


@pytest.mark.parametrize("text, seed, message", [
    ("tiny", "", "must be a number"), ("-1e-9", "", "finite and >= 0"),
    ("nan", "", "finite and >= 0"), ("1e-9", "x", "must be an integer"),
])
def test_bad_perturbation_settings_are_refused(monkeypatch, text, seed, message):
    monkeypatch.setenv(envs.PERTURB_VARIABLE, text)
    monkeypatch.setenv(envs.PERTURB_SEED_VARIABLE, seed)
    with pytest.raises(ValueError, match=message):
        envs.perturbation()


def _first_obs(env_id: str, seed: int = 3) -> np.ndarray:
    env = envs.make_env(env_id)
    obs = env.reset(seed=seed)[0]
    env.close()
    return obs


def test_perturbation_is_tiny_seeded_and_only_for_chaotic_envs(monkeypatch):
    monkeypatch.delenv(envs.PERTURB_VARIABLE, raising=False)
    plain = {env_id: _first_obs(env_id) for env_id in envs.STUDY_ENVS}
    with regression.perturbed(1e-6, seed=1):
        noisy = {env_id: _first_obs(env_id) for env_id in envs.STUDY_ENVS}
        again = _first_obs("HalfCheetah-v5")
        vec = envs.make_vec_env("HalfCheetah-v5", 2, seed=3)
        vec_obs = vec.initial_obs[0]
        vec.close()
    with regression.perturbed(1e-6, seed=2):
        other_seed = _first_obs("HalfCheetah-v5")
    assert np.array_equal(noisy["LunarLander-v3"], plain["LunarLander-v3"])
    cheetah, base = noisy["HalfCheetah-v5"], plain["HalfCheetah-v5"]
    assert cheetah.dtype == base.dtype and not np.array_equal(cheetah, base)
    assert np.all(np.abs(cheetah - base) <= 1e-6 * np.abs(base) * (1 + 1e-9))
    assert np.array_equal(again, cheetah) and np.array_equal(vec_obs, cheetah)
    assert not np.array_equal(other_seed, cheetah)


def _child_perturbation():
    return envs.perturbation()


def test_perturbation_reaches_worker_processes():
    """Sweep workers are spawned processes: they inherit the variable."""
    import multiprocessing as mp

    with regression.perturbed(1e-9, seed=4):
        with mp.get_context("spawn").Pool(1) as pool:
            assert pool.apply(_child_perturbation) == envs.Perturbation(1e-9, 4)


@pytest.mark.slow
def test_perturbation_reaches_the_chapter_kernel(tmp_path):
    from rlcomp import chapters

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "99-env.py").write_text(
        '# %% tags=["parameters"]\nprofile = "full"\n\n'
        "# %%\nfrom rlcomp.envs import perturbation\nprint(perturbation())\n")
    with regression.perturbed(1e-9, seed=5):
        out = chapters.run_chapter("99-env", "smoke", tmp_path / "99-env.ipynb", root=tmp_path)
    text = out.read_text()
    assert "Perturbation(scale=1e-09, seed=5)" in text

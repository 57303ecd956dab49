# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Setup: the trained agents
#
# Every experiment in this book compresses the same trained agents, so this chapter looks at them
# before anything is compressed. The study {cite:p}`guggilla2023choosing` trains a Double DQN
# agent {cite:p}`vanhasselt2016deep,mnih2015human` on the discrete LunarLander task and a
# policy-gradient agent on the continuous HalfCheetah task of Gym {cite:p}`brockman2016openai`;
# Gymnasium's successors of those tasks are `LunarLander-v3` and `HalfCheetah-v5`. For every
# environment and training seed the chapter shows how well the agent plays (the mean, standard
# deviation and interquartile mean {cite:p}`agarwal2021deep` of the return over the final
# evaluation episodes), what its training cost, and whether it meets the target the project set.
# The training curves show how each run got there.
#
# **Prerequisites.** The trained checkpoints committed under `checkpoints/` (`make checkpoints`
# retrains them; `checkpoints/README.md` records how). Every number below is read from a
# checkpoint's JSON file; nothing is re-measured here. In the `smoke` profile the chapter does not
# read the committed checkpoints: it trains two tiny agents for a few thousand steps in a temporary
# directory and runs the same tables and figures on them, so that continuous integration exercises
# the training path too.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import Markdown
from myst_nb import glue

from rlcomp.agents.train import make_config, train_and_save
from rlcomp.analysis.plotting import readable, use_book_style
from rlcomp.analysis.tables import portable
from rlcomp.analysis.training import (
    checkpoint_table,
    cost_display,
    coverage_note,
    curve_table,
    headline_display,
    load_checkpoints,
    pg_variant_note,
    returns_display,
    returns_view,
    targets_note,
    training_figure,
)

use_book_style()

# %% tags=["parameters"]
profile = "full"
checkpoint_dir = "checkpoints"

# %% [markdown]
# ## The agents
#
# In the `full` profile the agents are the checkpoints in `checkpoint_dir`. In the `smoke` profile
# the next cell trains one seed of each agent with tiny budgets (a few thousand environment steps,
# evaluations of a few episodes) and the rest of the chapter reads those instead. Training runs on
# one thread with fixed seeds, so the smoke agents, and every return below, are the same on every
# run.

# %% tags=["remove-stderr"]
if profile == "smoke":
    smoke_dir = tempfile.TemporaryDirectory(prefix="rlcomp-setup-smoke-")
    checkpoint_dir = smoke_dir.name
    train_and_save(
        "ddqn",
        make_config("ddqn", env_id="LunarLander-v3", seed=0, total_steps=2_000,
                    learning_starts=500, target_update_interval=250, eval_interval=1_000,
                    eval_episodes=2, final_eval_episodes=5),
        checkpoint_dir,
        command=["notebooks/00-setup.py", "profile=smoke"],
    )
    train_and_save(
        "pg",
        make_config("pg", env_id="HalfCheetah-v5", seed=0, total_steps=2_048, rollout_steps=512,
                    update_epochs=2, eval_interval=1_024, eval_episodes=2,
                    final_eval_episodes=3),
        checkpoint_dir,
        command=["notebooks/00-setup.py", "profile=smoke"],
    )

# %%
checkpoints = load_checkpoints(checkpoint_dir)
table = checkpoint_table(checkpoints)
curves = curve_table(checkpoints)
Markdown(coverage_note(table))

# %% [markdown]
# ## What each agent achieves
#
# One row per environment and training seed: the training budget in environment steps, and the
# step of the snapshot that was kept, the one whose greedy (or mean-action) evaluation on seeds
# reserved for selection was best. The returns (mean, standard deviation and interquartile mean)
# are those of that snapshot over the final evaluation episodes on other seeds, so the selection
# does not flatter them.

# %%
returns_display(table)

# %% [markdown]
# ## What training cost, and the targets
#
# The project set each agent a target: a mean return over the final evaluation episodes, reached
# within a budget of environment steps and of wall-clock seconds of training:

# %%
Markdown(targets_note())

# %% [markdown]
# The wall-clock and CPU seconds below were measured by each training run on the machine that
# trained it (its provenance is in the checkpoint's JSON), so they vary from machine to machine and
# run to run, unlike the returns; an agent meets its target when all three conditions hold.

# %%
# NBVAL_IGNORE_OUTPUT
cost_display(table)

# %% [markdown]
# ## Training curves
#
# {numref}`fig-training-curves` shows every training run: the return of each training episode,
# smoothed, and the selection evaluations that chose the kept snapshot.

# %% tags=["remove-output"]
fig = training_figure(curves)
glue("fig-training-curves", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-training-curves
# :name: fig-training-curves
#
# Not in the poster: training curves, one panel per environment and one colour and marker per
# training seed. Solid lines: the return of each training episode, averaged over the last 20
# episodes, at the environment step the episode ended. Dashed lines with markers: the mean return
# of the evaluations on selection seeds; the best of them picked the kept snapshot. Dotted line:
# the target mean return.
# ```

# %% [markdown]
# ## Which policy gradient
#
# The poster trains HalfCheetah with policy gradients. Our policy-gradient agent has a value
# baseline and generalized advantage estimation {cite:p}`schulman2016high` and optimises either
# the vanilla policy-gradient loss or PPO's clipped surrogate {cite:p}`schulman2017proximal`; the
# checkpoint's configuration says which. Runs of the other variant, kept for comparison in
# `variants/` beside the checkpoints but not used by the book, are summarised too:

# %%
variants = checkpoint_table(load_checkpoints(Path(checkpoint_dir) / "variants", recursive=True))
Markdown(pg_variant_note(table, "HalfCheetah-v5", variants))

# %% [markdown]
# ## Headline numbers
#
# The final mean return of every agent, the numbers the later chapters compress from.

# %%
glue("setup-headline", headline_display(table))

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# (hidden from the book) what the regression test checks: the numbers above that are the same
# on every x86-64 processor; HalfCheetah's returns move with another processor's last bits
# (tests/test_portable_regression.py checks its policies instead). The tiny LunarLander agent
# trained here came out the same on an Intel machine, an AMD EPYC and with MKL_CBWR=COMPATIBLE.
portable(returns_view(table))

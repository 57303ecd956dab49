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
# # Low rank
#
# Rank reduction replaces each weight matrix by its best approximation of lower rank (the
# truncated SVD) and, where that is smaller, stores and runs it as two thin factors. The study
# {cite:p}`guggilla2023choosing` reduces the rank of its agents' layers at increasing levels,
# alone and together with pruning, and plots evaluation time (its Fig 5), return (Fig 6), RAM
# (Fig 7) and CPU utilisation (Fig 8 and 9) against the levels. This chapter repeats those
# figures for both environments, on a grid of rank-reduction levels by pruning levels (global
# magnitude pruning, as in [Pruning](01-pruning)), and adds the study's proposed improvement:
# keeping the input and output layers at full rank. Beside each of the study's measures of time,
# memory and CPU it shows a cleaner one (per environment step, the model's own bytes, CPU seconds
# per step). Every point is the mean over training seeds with a 95% t confidence
# interval over the per-seed values.
#
# **Prerequisites.** The trained checkpoints (chapter [Setup](00-setup)). The chapter runs its
# sweep (the same jobs as `rlcomp sweep sweeps/02-low-rank.<profile>.yaml`) through the results
# store `results/rlcomp.sqlite` (`results/smoke.sqlite` in the `smoke` profile), so jobs already
# stored are not run again.

# %%
from functools import partial

import matplotlib.pyplot as plt
from IPython.display import Markdown
from myst_nb import glue

from rlcomp.analysis.claims import (
    all_compression_lowers,
    evaltime_drop_30,
    keep_io_remedy,
    keep_io_summary,
    pruning_hurts_more,
    rank_resources,
    return_evaltime,
)
from rlcomp.analysis.figures import (
    LOWRANK_VARIANTS,
    fig5_rank_evaltime,
    fig5_rank_steptime,
    fig6_grid_return,
    fig7_rank_ram,
    fig8_grid_cpu,
    fig9_rank_cpu,
    fixed_length_note,
    rank_lines,
    rank_return,
)
from rlcomp.analysis.plotting import book_figure, declutter, readable, shared_legend
from rlcomp.analysis.selection import GRID_METHODS, select
from rlcomp.analysis.tables import portable, sweep_note, wide_table
from rlcomp.analysis.verdict_table import claim_markdown
from rlcomp.experiments.plans import LOW_RANK, chapter_results
from rlcomp.stats import aggregate

# %% tags=["parameters"]
profile = "full"
envs = None
train_seeds = None
episodes = None
levels = None
store = None
workers = None

# %% tags=["remove-stderr"]
results = chapter_results(LOW_RANK, profile, envs=envs, train_seeds=train_seeds,
                          episodes=episodes, levels=levels, store=store, workers=workers)
frame, envs = results.frame, results.envs
Markdown(sweep_note(results.sweep, results.run))

# %% [markdown]
# ## Evaluation time against the rank reduced (Fig 5)
#
# The study's evaluation time is the wall time of all evaluation episodes. It carries the length
# of the episodes: a lander that lands (or crashes) ends its episode sooner than one that hovers,
# so a change of behaviour moves the eval time even when each decision costs the same. The
# episode length is therefore drawn beneath it, and below that the cleaner measure, the wall
# time per environment step.

# %% tags=["remove-output"]
fig, axes = book_figure(3, len(envs), height=8.6)
for env, ax_eval, ax_length, ax_step in zip(envs, *axes, strict=True):
    fig5_rank_evaltime(frame, ax_eval, env=env)
    rank_lines(frame, ax_length, env=env, metric="episode_length_mean")
    fig5_rank_steptime(frame, ax_step, env=env)
declutter(shared_legend(fig))
glue("fig-lowrank-evaltime", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-lowrank-evaltime
# :name: fig-lowrank-evaltime
#
# Poster Fig 5: % rank reduced vs eval time, both environments. Top: wall seconds of all
# evaluation episodes against the percentage of rank reduced, one line per pruning level. Middle:
# mean episode length (steps). Bottom: wall microseconds per environment step. Bands: 95% t
# confidence intervals over training seeds.
# ```

# %%
Markdown(fixed_length_note(frame, envs))

# %% [markdown]
# The study's sharp fall "around 30%", first in its own measure (the evaluation's wall time,
# which the simulator dominates) and then in the policy's own time per decision (interleaved A/B
# runs against dense in a fresh process pinned to one core):

# %%
Markdown(claim_markdown(partial(evaltime_drop_30, metric="eval_seconds"), frame))

# %%
Markdown(claim_markdown(partial(evaltime_drop_30, metric="policy_time_ratio"), frame))

# %% [markdown]
# Whether rank reduction changes time more than pruning at the same levels, in the study's
# measure and in the policy's own time:

# %%
Markdown(claim_markdown(partial(rank_resources, metric="eval_seconds"), frame))

# %%
Markdown(claim_markdown(partial(rank_resources, metric="policy_time_ratio"), frame))

# %% [markdown]
# The study's "positive relationship between performance and evaluation time" (its Fig 4), over
# every naive model of this chapter, in both measures of time:

# %%
Markdown(claim_markdown(partial(return_evaltime, metric="eval_seconds"), frame))

# %%
Markdown(claim_markdown(partial(return_evaltime, metric="policy_time_ratio"), frame))

# %% [markdown]
# ## Return over the grid of pruned by rank reduced (Fig 6)

# %% tags=["remove-output"]
fig, axes = book_figure(len(envs), 1, height=3.0 * len(envs))
fig6 = {env: fig6_grid_return(frame, ax, env=env) for env, ax in zip(envs, axes[:, 0], strict=True)}
declutter(fig)
glue("fig-lowrank-grid-return", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-lowrank-grid-return
# :name: fig-lowrank-grid-return
#
# Poster Fig 6: % pruned and % rank reduced vs return, both environments. Mean return over the
# evaluation episodes for each pair of a percentage pruned (x) and a percentage of rank reduced
# (y), written in the cell where it fits (the table below has every value with its interval); the
# dense agent is the bottom left cell.
# ```

# %%
Markdown(claim_markdown(all_compression_lowers, frame))

# %%
Markdown(claim_markdown(pruning_hurts_more, frame))

# %% [markdown]
# The returns behind the figure (mean over training seeds, 95% CI in brackets), one row per
# percentage of rank reduced, one column per environment and pruning level (a fraction):

# %%
wide_table(fig6, "lowrank", column="prune", metric="return_mean")

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# (hidden from the book) what the regression test checks: the numbers above that are the same
# on every x86-64 processor; HalfCheetah's returns move with another processor's last bits
# (tests/test_portable_regression.py checks its policies instead)
portable(wide_table(fig6, "lowrank", column="prune", metric="return_mean"))

# %% [markdown]
# ## Memory against the rank reduced (Fig 7)
#
# The study's % RAM is the evaluating process's share of the machine's memory. That process holds
# the Python interpreter, PyTorch and Gymnasium, hundreds of megabytes, against a model of about
# 0.3 MB, so its RAM % says little about the model (each job runs in a fresh worker and the share
# is sampled over the whole evaluation). Beneath it: the model's isolated footprint (the resident
# bytes of a fresh process that loads only the model, minus the same process without it), and the
# model's own size, the bytes of its compact file (factors where they are smaller than the dense
# matrix, a bitmask and the nonzeros where pruning makes that smaller).

# %% tags=["remove-output"]
fig, axes = book_figure(3, len(envs), height=8.6)
fig7_bytes = {}
for env, ax_ram, ax_own, ax_bytes in zip(envs, *axes, strict=True):
    fig7_rank_ram(frame, ax_ram, env=env)
    fig7_rank_ram(frame, ax_own, env=env, metric="isolated_footprint_bytes")
    fig7_bytes[env] = fig7_rank_ram(frame, ax_bytes, env=env, metric="bytes")
declutter(shared_legend(fig))
glue("fig-lowrank-ram", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-lowrank-ram
# :name: fig-lowrank-ram
#
# Poster Fig 7: % rank reduced vs % RAM, both environments. Top: the evaluating process's % RAM
# against the percentage of rank reduced, one line per pruning level (environment-dominated).
# Middle: the model's isolated footprint in kB (10^3 bytes). Bottom: kilobytes of the compressed
# model's compact file. Bands: 95% t confidence intervals over training seeds.
# ```

# %%
Markdown(claim_markdown(partial(rank_resources, metric="ram_percent"), frame))

# %%
Markdown(claim_markdown(partial(rank_resources, metric="isolated_footprint_bytes"), frame))

# %% [markdown]
# The file sizes behind the lower panels, in bytes:

# %%
# NBVAL_CHECK_OUTPUT
wide_table(fig7_bytes, "lowrank", column="prune", metric="bytes")

# %% [markdown]
# ## CPU over the grid of pruned by rank reduced (Fig 8)

# %% tags=["remove-output"]
fig, axes = book_figure(len(envs), 1, height=3.0 * len(envs))
for env, ax in zip(envs, axes[:, 0], strict=True):
    fig8_grid_cpu(frame, ax, env=env)
declutter(fig)
glue("fig-lowrank-grid-cpu", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-lowrank-grid-cpu
# :name: fig-lowrank-grid-cpu
#
# Poster Fig 8: % pruned and % rank reduced vs CPU %, both environments. The evaluating process's
# CPU utilisation (%) for each pair of a percentage pruned (x) and a percentage of rank reduced
# (y), written in the cell where it fits.
# ```

# %% [markdown]
# ## CPU against the rank reduced (Fig 9)
#
# CPU % is a utilisation: a process that computes without waiting stays near one core however
# cheap each decision is, and one that waits (for instance on a busy machine) shows less. The
# cost of the work is the CPU time it takes, drawn beneath per environment step (simulator and
# policy together), and at the bottom the policy's own time per decision as a ratio to the dense
# policy's (interleaved A/B runs in a fresh process pinned to one core with one thread).

# %% tags=["remove-output"]
fig, axes = book_figure(3, len(envs), height=8.6)
for env, ax_cpu, ax_seconds, ax_policy in zip(envs, *axes, strict=True):
    fig9_rank_cpu(frame, ax_cpu, env=env)
    fig9_rank_cpu(frame, ax_seconds, env=env, metric="cpu_seconds_per_step")
    fig9_rank_cpu(frame, ax_policy, env=env, metric="policy_time_ratio")
declutter(shared_legend(fig))
glue("fig-lowrank-cpu", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-lowrank-cpu
# :name: fig-lowrank-cpu
#
# Poster Fig 9: % rank reduced vs CPU %, both environments. Top: CPU utilisation (%) of the
# evaluating process against the percentage of rank reduced, one line per pruning level
# (environment-dominated). Middle: CPU microseconds per environment step. Bottom: the policy's time
# per decision over the dense policy's. Bands: 95% t confidence intervals over training seeds.
# ```

# %% [markdown]
# What the policy's time should follow, the same on every machine: the multiply-accumulates of one
# decision as our layers compute it (a pruned matrix is still multiplied whole; a factorized one
# costs its rank times the sum of its sides):

# %%
# NBVAL_CHECK_OUTPUT
macs = {env: aggregate(select(frame, env=env, methods=GRID_METHODS, metric="macs_per_decision"),
                       ["prune", "lowrank"], metric=None) for env in envs}
wide_table(macs, "lowrank", column="prune", metric="macs_per_decision")

# %%
Markdown(claim_markdown(partial(rank_resources, metric="cpu_percent"), frame))

# %% [markdown]
# ## Keeping the input and output layers at full rank
#
# The study ends by proposing to "mitigate the steeper drop-off in performance from higher levels
# of rank reduction" by setting minimum ranks for the input and output layers. The input layer
# (8 or 17 inputs) and the output layer (4 or 6 outputs) have a small full rank, so reducing it
# removes a large share of what they carry; the hidden 256 x 256 layer holds most of the
# parameters. {numref}`fig-lowrank-keep-io` reduces the rank of the hidden layer only, beside the
# plain method.

# %% tags=["remove-output"]
fig, axes = book_figure(1, len(envs), height=3.4)
keep_io = {env: rank_return(frame, ax, env=env, variants=LOWRANK_VARIANTS)
           for env, ax in zip(envs, axes[0], strict=True)}
declutter(shared_legend(fig))
glue("fig-lowrank-keep-io", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-lowrank-keep-io
# :name: fig-lowrank-keep-io
#
# Not in the poster: its proposed remedy. Return against the percentage of rank reduced, with every
# layer reduced and with the input and output layers kept at full rank (no pruning). Bands: 95% t
# confidence intervals over training seeds.
# ```

# %%
Markdown(claim_markdown(keep_io_remedy, frame))

# %% [markdown]
# Whether it removes the steep drop, environment by environment (the return "holds" while it
# stays within 10% of the dense return):

# %%
Markdown(keep_io_summary(frame))

# %% [markdown]
# The chapter's headline numbers, the returns behind {numref}`fig-lowrank-keep-io`:

# %%
wide_table(keep_io, "lowrank", metric="return_mean")

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# (hidden from the book) what the regression test checks: the numbers above that are the same
# on every x86-64 processor; HalfCheetah's returns move with another processor's last bits
# (tests/test_portable_regression.py checks its policies instead)
portable(wide_table(keep_io, "lowrank", metric="return_mean"))

# %% [markdown]
# ## Data
#
# Every measurement behind this chapter is a row of [`results.csv`](data/results.csv) (one row per
# checkpoint, spec, fine-tuning, training seed and metric, with the provenance of its job), written
# by [Verdicts](05-verdicts) from the results store.

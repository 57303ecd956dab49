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
# # Fine-tuning
#
# A compressed agent can be used as it comes out of the compressor ("naive" compression) or
# trained a little further while the compression holds. The study {cite:p}`guggilla2023choosing`
# fine-tunes its compressed agents with compressed target networks and compares them with the
# naive ones in two figures: return against evaluation time (its Fig 4) and return against % RAM
# (its Fig 10). It concludes that fine-tuning gave no significant gain over naive compression
# while costing much more, and that fine-tuning lowers the spread of performance at a given
# evaluation time but raises it at a given RAM usage. This chapter repeats both figures for both
# environments, sets the returns of each compression naive and fine-tuned side by side, and
# measures what the fine-tuning cost.
#
# Fine-tuning continues the agent's own algorithm (Double DQN for LunarLander, policy gradient
# for HalfCheetah) from the compressed network for a fixed budget of environment steps, and the
# compression holds throughout: pruned weights stay zero, low-rank factors stay factors of the
# same rank, int8 layers stay int8, and Double DQN's target network is a copy of the compressed
# network. The compressions are global pruning and rank reduction at three levels (one in the
# `smoke` profile), 8-bit post-training quantization (`quant=8`) and quantization-aware training
# (`quant=8,mode=qat`). Naive, the two int8 models are the same: the trained weights rounded
# once. Fine-tuned, they differ. QAT is the study's in-training quantization: the network keeps
# float weights, computes every forward pass with them rounded to int8, and learns through the
# rounding with straight-through gradients (the rounding counts as the identity when gradients
# flow back); it is stored as the int8 network it computes. Post-training quantization
# fine-tuned starts from the already rounded weights, trains them the same way and rounds them
# again at the end. The dense agent fine-tuned for the same budget is the control: what the extra
# training does without any compression.
#
# **Prerequisites.** The trained checkpoints (chapter [Setup](00-setup)); chapters
# [Pruning](01-pruning), [Low rank](02-low-rank) and [Quantization](03-quantization) describe the
# compressions. The chapter runs its sweep (the same jobs as `rlcomp sweep
# sweeps/04-fine-tuning.<profile>.yaml`) through the results store `results/rlcomp.sqlite`
# (`results/smoke.sqlite` in the `smoke` profile), so jobs already stored are not run again.

# %%
from functools import partial

import matplotlib.pyplot as plt
from IPython.display import Markdown
from myst_nb import glue

from rlcomp.analysis.claims import finetune_cost, finetune_deviation, finetune_no_gain
from rlcomp.analysis.figures import (
    fig4_evaltime_return,
    fig10_ram_return,
    fit_slopes,
    fixed_length_note,
    label_points,
)
from rlcomp.analysis.figures_bars import finetune_cost_bars
from rlcomp.analysis.plotting import book_figure, declutter, readable, shared_legend
from rlcomp.analysis.selection import without_finetuned_dense
from rlcomp.analysis.tables import finetune_cost_table, finetune_table, sweep_note
from rlcomp.analysis.verdict_table import claim_markdown
from rlcomp.experiments.plans import FINE_TUNING, chapter_results

# %% tags=["parameters"]
profile = "full"
envs = None
train_seeds = None
episodes = None
levels = None
store = None
workers = None

# %% tags=["remove-stderr"]
results = chapter_results(FINE_TUNING, profile, envs=envs, train_seeds=train_seeds,
                          episodes=episodes, levels=levels, store=store, workers=workers)
frame, envs = results.frame, results.envs
Markdown(sweep_note(results.sweep, results.run))

# %% [markdown]
# ## Return against evaluation time (Fig 4)
#
# The study's evaluation time is the wall time of all evaluation episodes, as a percentage of
# the dense agent's. It carries the length of the episodes (a lander that crashes early finishes
# sooner), so the lower row repeats the figure with the time per environment step, which does
# not. The naive int8 and QAT points share their return (the same rounded weights) but not their
# time: the QAT network keeps its float weights and rounds them in every forward pass, the
# quantize and dequantize steps the study shows in its computation graph, while the int8 network
# only scales its stored int8 weights back to float.

# %% tags=["remove-output"]
points = without_finetuned_dense(frame)
fig, axes = book_figure(2, len(envs), height=7.6)
fig4 = {}
for env, ax_total, ax_step in zip(envs, axes[0], axes[1], strict=True):
    fig4[f"{env}, % eval time"] = fig4_evaltime_return(points, ax_total, env=env, fit=True)
    fig4[f"{env}, % eval time per step"] = fig4_evaltime_return(
        points, ax_step, env=env, x_metric="seconds_per_step", fit=True)
    label_points(ax_total, fig4[f"{env}, % eval time"], points)
    label_points(ax_step, fig4[f"{env}, % eval time per step"], points)
declutter(shared_legend(fig))
glue("fig-finetune-evaltime", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-finetune-evaltime
# :name: fig-finetune-evaltime
#
# Poster Fig 4: % eval time vs return, both environments. Mean return against evaluation time
# in % of the dense agent's, one point per compression, naive (circles) and fine-tuned (squares);
# the star is the dense agent. Labels: P = pruned, R = rank reduced (with the % level), int8 =
# post-training quantization, QAT = quantization-aware; a label that would cover another is left
# out, its point keeps its marker and colour. Top: the wall time of all evaluation episodes (the
# study's measure). Bottom: wall time per environment step. Error bars: 95% t confidence
# intervals over training seeds, in both directions. Dashed: ordinary least-squares line of the
# compressions' mean returns on their mean times, naive and fine-tuned apart, with its 95%
# confidence band; the slopes are listed below. The line treats each compression's mean as one
# observation, so its band reflects the scatter between compressions, not the spread between
# training seeds (the error bars show that). The dense agent fine-tuned (the control) is left out
# here; its return is in the table at the end.
# ```

# %%
Markdown(fit_slopes(fig4, unit="percentage point of the dense agent's time"))

# %%
Markdown(fixed_length_note(frame, envs))

# %% [markdown]
# How we measure "the spread of performance at a given evaluation time" was fixed before looking
# at any result: for each environment and training seed, the compressions' returns (in % of the
# dense agent's) are fitted with a straight line in evaluation time, once for the naive and once
# for the fine-tuned models; the spread is the standard deviation of the returns around that line.
# The measurement is the fine-tuned spread minus the naive one, paired by environment and seed;
# the study's claim is that it is negative here and positive for RAM (Fig 10).

# %%
Markdown(claim_markdown(partial(finetune_deviation, x_metric="eval_seconds"), frame))

# %% [markdown]
# ## Return against RAM (Fig 10)

# %% tags=["remove-output"]
fig, axes = book_figure(1, len(envs), height=4.2)
fig10 = {}
for env, ax in zip(envs, axes[0], strict=True):
    fig10[f"{env}, % RAM"] = fig10_ram_return(points, ax, env=env, fit=True)
    label_points(ax, fig10[f"{env}, % RAM"], points)
declutter(shared_legend(fig))
glue("fig-finetune-ram", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-finetune-ram
# :name: fig-finetune-ram
#
# Poster Fig 10: %RAM vs return, both environments. Mean return against the % RAM of the
# evaluating process, one point per compression, naive and fine-tuned; the star is the dense
# agent; labels, error bars and fitted lines as in {numref}`fig-finetune-evaltime` (slopes below).
# The share of RAM is mostly the runtime's, whatever the model (chapter
# [Quantization](03-quantization) measures the model's own footprint).
# ```

# %%
Markdown(fit_slopes(fig10, unit="percentage point of RAM"))

# %%
Markdown(claim_markdown(partial(finetune_deviation, x_metric="ram_percent"), frame))

# %% [markdown]
# ## Does fine-tuning pay?
#
# The returns behind both figures, per compression, are the chapter's headline numbers at its
# end: naive, fine-tuned, and the change fine-tuning made (fine-tuned minus naive, paired by
# training seed). The study's conclusion, measured over every compression that was fine-tuned
# (the dense control left out), in % of the dense agent's return so that the two environments'
# scales agree:

# %%
Markdown(claim_markdown(finetune_no_gain, frame))

# %%
Markdown(claim_markdown(finetune_cost, frame))

# %% [markdown]
# ## What fine-tuning costs
#
# Fine-tuning runs the training algorithm: it steps the environment, explores, and updates the
# network (Double DQN also fills a replay buffer and keeps a target network). Evaluation only
# acts. {numref}`fig-finetune-cost` sets the CPU seconds of each fine-tuning beside the CPU
# seconds of evaluating the fine-tuned model once (all the chapter's evaluation episodes), as the
# sweep recorded them in the same job.

# %% tags=["remove-output"]
fig, axes = book_figure(len(envs), 1, height=3.0 * len(envs))
for env, ax in zip(envs, axes[:, 0], strict=True):
    finetune_cost_bars(frame, ax, env=env)
declutter(shared_legend(fig))
glue("fig-finetune-cost", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-finetune-cost
# :name: fig-finetune-cost
#
# Not in the poster: CPU seconds of fine-tuning each compressed agent (its whole budget of
# environment steps) and of evaluating the fine-tuned agent (all evaluation episodes of one job),
# one thread; models named as in {numref}`fig-finetune-evaltime`. Error bars: 95% t confidence
# intervals over training seeds.
# ```

# %% [markdown]
# The costs in full: environment steps and optimizer updates of fine-tuning, its CPU and wall
# seconds, the same job's evaluation (environment steps, CPU and wall seconds) and the ratio of
# the CPU seconds (means over training seeds; times vary from run to run and machine to machine).

# %%
# NBVAL_IGNORE_OUTPUT
finetune_cost_table(frame, envs=envs)

# %% [markdown]
# ## Headline numbers
#
# The return of every model, naive and fine-tuned, and the change fine-tuning made (fine-tuned
# minus naive, paired by training seed); mean over training seeds, 95% CI in brackets. The dense
# row is the control: the agent fine-tuned without any compression.

# %%
finetune_table(frame, envs=envs)

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# (hidden from the book) what the regression test checks: the file bytes of every model, naive
# and fine-tuned, the same on every x86-64 processor (the compression holds while it trains).
# Fine-tuned returns are left out: fine-tuning's episodes, and with them its weights, diverge with
# another processor's last bits, in both environments (the naive returns are checked in 01-03).
finetune_table(frame, envs=envs, metric="bytes")

# %% [markdown]
# ## Data
#
# Every measurement behind this chapter is a row of [`results.csv`](data/results.csv) (one row per
# checkpoint, spec, fine-tuning, training seed and metric, with the provenance of its job), written
# by [Verdicts](05-verdicts) from the results store.

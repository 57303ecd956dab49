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
# # Beyond the poster: the smallest policy that keeps its return
#
# The study {cite:p}`guggilla2023choosing` compresses its agents by pruning, rank reduction and
# 8-bit quantization, and measures what each costs in return. This chapter asks what someone
# shipping a policy asks: **how small can the policy's file be while the agent keeps at least 95%
# of its return, and what does making it cost?** Beside the poster's methods, alone and
# composed with int8, it measures three ways beyond them: fewer bits (int4 and int2 weights, per
# output channel or per group of 32 inputs, optionally with the first and last layers at 8 bits,
# quantized after training or trained with quantization), gradual magnitude pruning while
# fine-tuning {cite:p}`zhu2017prune`, and policy distillation {cite:p}`rusu2016policy`: a new,
# small network (two hidden layers of 64 down to 8 units) trained to act like the agent, used
# alone or quantized.
#
# How the numbers are made:
#
# - **Model bytes** are the compressed file's tensor payload: the file without its safetensors
#   header, that is everything the policy needs as stored (weights, scales, sparse bitmasks, and
#   the observation statistics and action bounds a policy carries); the tables give them in kB
#   (1 kB = 1000 bytes). A model's **compression factor** is the dense float32 model's model bytes
#   over its own, shown as how many times smaller than dense it is (a factor followed by x); the
#   whole file's size (the payload plus a header under 1 kB) is shown beside it.
# - **Returns are normalized** per environment and training seed as 100 x (x - random) / (dense -
#   random), with the random policy evaluated on the same episodes, and averaged over the training
#   seeds with a 95% Student-t interval, as in the verdicts.
# - A model **keeps the return** when its mean normalized return is at least 95% (the rule is on
#   the mean over seeds; its interval, shown beside it, says how sure that is). The models are
#   grouped into method families (the steps of the spec: `prune+int8` prunes then quantizes to 8
#   bits, `distill+int4` distils a student then quantizes it to 4 bits, `gradual prune` and `int4
#   QAT` are fine-tuned); for each family the table below gives the smallest model that keeps the
#   return, and for a family none of whose models does, its best-returning model.
# - **Training cost** is what making a model took beyond compressing it: the environment steps and
#   CPU seconds of distillation and of fine-tuning (a pure compression takes none).
#
# The issue behind this chapter set targets: a compression factor of at least 300 for
# LunarLander-v3 (stretch: 500) and of at least 100 for HalfCheetah-v5 (stretch: 300) at 95% of
# the dense agent's normalized return, and a distillation that takes at most two minutes on one
# core for each training seed. The section {ref}`The targets <beyond-targets>` sets what we measured
# beside them.
#
# **Prerequisites.** The trained checkpoints (chapter [Setup](00-setup)); chapters
# [Pruning](01-pruning), [Low rank](02-low-rank) and [Quantization](03-quantization) show the
# poster's methods one by one (the levels measured here are their candidates for small files),
# and [Fine-tuning](04-fine-tuning) the fine-tuning used here. The chapter runs two sweeps through
# the results store `results/rlcomp.sqlite` (`results/smoke.sqlite` in the `smoke` profile), the
# same jobs as `rlcomp sweep sweeps/06-beyond-the-poster.<profile>.yaml` (compression and
# distillation, not fine-tuned) and `rlcomp sweep
# sweeps/06-beyond-the-poster.finetuned.<profile>.yaml` (fine-tuned). Its jobs measure returns,
# sizes and the policy's time per decision (A/B against the dense policy in a fresh process pinned
# to one core, as in chapters 01 to 04); the latency and isolated-memory probes (seconds of every
# job) are switched off here, since a model's file is the question.

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown
from myst_nb import glue

from rlcomp.analysis.frontier import (
    bytes_table,
    distill_cost_display,
    distill_cost_markdown,
    distill_cost_table,
    distillation_gain,
    frontier_display,
    frontier_panels,
    frontier_table,
    gain_markdown,
    short_markdown,
    spec_points,
    sweeps_note,
    target_display,
    target_markdown,
    target_table,
    write_frontier,
)
from rlcomp.analysis.plotting import readable, use_book_style
from rlcomp.experiments.plans import BEYOND, BOOK_DATA, chapter_results

use_book_style()

# %% tags=["parameters"]
profile = "full"
envs = None
train_seeds = None
episodes = None
store = None
workers = None
data_dir = None  # where frontier.csv goes; None: book/data in the full profile only

# %% tags=["remove-stderr"]
results = chapter_results(BEYOND, profile, envs=envs, train_seeds=train_seeds,
                          episodes=episodes, store=store, workers=workers)
frame, envs = results.frame, results.envs
table = frontier_table(frame)
data_dir = data_dir or (BOOK_DATA if profile == "full" else None)
written = write_frontier(frame, data_dir) if data_dir else None
Markdown(sweeps_note(results))

# %% [markdown]
# ## The frontier
#
# Every model of the sweeps is one point in {numref}`fig-frontier-lunarlander` and
# {numref}`fig-frontier-halfcheetah`: its model bytes on a log scale against its normalized
# return, in three rows that share both axes: the poster's methods, the other compressions
# (fewer bits, quantization-aware training, gradual pruning) and distilled students. A model above
# the dashed line keeps the return; the further left, the smaller its file; left of a dotted line,
# it is smaller than a target asks. The point of each family that the table below picks is ringed.

# %% tags=["remove-output"]
for env, name in (("LunarLander-v3", "fig-frontier-lunarlander"),
                  ("HalfCheetah-v5", "fig-frontier-halfcheetah")):
    fig = frontier_panels(frame, env)
    glue(name, readable(fig), display=False)
    plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-frontier-lunarlander
# :name: fig-frontier-lunarlander
#
# Not in the poster: LunarLander-v3 (Double DQN, dense Q-network 8-256-256-4). Normalized return
# (% of the dense agent's gain over random actions) against model bytes (log scale), one point per
# model; rows: the poster's methods, fewer bits with quantization-aware training and gradual
# pruning, distilled students; within a row each method family has its own colour and marker.
# Error bars: 95% t confidence intervals over training seeds. Black star: the dense agent. Ring:
# the smallest model of its family that keeps 95%. Dashed: 95%. Dotted: the sizes of the target
# and stretch factors. Hollow markers on the bottom edge: models whose return lies below the
# axis.
# ```

# %% [markdown]
# ```{glue:figure} fig-frontier-halfcheetah
# :name: fig-frontier-halfcheetah
#
# Not in the poster: HalfCheetah-v5 (policy gradient, Gaussian policy 17-256-256-6; the policy
# network is what is compressed): normalized return against model bytes, as in
# {numref}`fig-frontier-lunarlander`.
# ```

# %% [markdown]
# ## The smallest files that keep 95%
#
# One row per environment and method family: the smallest model whose mean normalized return is
# at least 95% (mean over training seeds, 95% CI in brackets), its model bytes and whole file (kB,
# 1 kB = 1000 bytes), how many times smaller than the dense model it is, and what training it took.
# Where the column *keeps 95%* says *no*, no model of the family gets there and the row is the
# family's best-returning model.

# %%
frontier_display(table)

# %% [markdown]
# The families that never keep the return, with how close their best model comes:

# %%
Markdown(short_markdown(table))

# %% [markdown]
# (beyond-targets)=
# ## The targets
#
# The smallest model of any family that keeps the return, against the targets for the
# compression factor:

# %%
Markdown(target_markdown(target_table(table)))

# %% [markdown]
# ## Distillation against the poster's methods
#
# The poster's methods are pruning, rank reduction and 8-bit quantization, alone, composed and
# fine-tuned. The largest factor any of them reaches while keeping the return, against the
# largest a distilled student reaches:

# %%
Markdown(gain_markdown(distillation_gain(table)))

# %% [markdown]
# Why the two can differ: pruning removes weights from a network whose size was chosen for
# training, not for acting, and rank reduction and quantization keep its shape. A student is a new
# network whose shape is chosen for acting: it learns the agent's choices (the distribution of its
# actions, on the states of the student's own rollouts) rather than the values or gradients the
# agent needed to learn them. Where a few hundred parameters suffice for that, quantization then
# shrinks each of them as it shrinks the dense network's.

# %% [markdown]
# ## What it costs
#
# A pure compression takes no training; distillation and fine-tuning do.
# Each distillation of each student, per environment (a student quantized after distillation is
# distilled again, so it counts as one more distillation): its environment and gradient steps, the
# CPU seconds of one distillation (mean over training seeds, 95% CI, and the largest of any one),
# and its wall seconds.

# %%
costs = distill_cost_table(frame)
distill_cost_display(costs)

# %% [markdown]
# The jobs run PyTorch on one thread, so a distillation's CPU seconds are seconds of one core.
# Against the target of two minutes on one core per seed:

# %%
Markdown(distill_cost_markdown(costs))

# %% [markdown]
# Every model of the chapter, with its family, sizes, return and training cost (the numbers behind
# {numref}`fig-frontier-lunarlander` and {numref}`fig-frontier-halfcheetah`), and the policy's time
# per decision with its ratio to the dense policy's (means over training seeds; times depend on the
# machine, the ratio much less); gradual pruning and one-shot pruning fine-tuned for the same
# budget stand side by side here:

# %%
frontier_display(spec_points(frame))

# %% [markdown]
# ## Headline numbers
#
# The smallest file that keeps the return, per environment, and its factor against the targets.
# In the `full` profile the frontier table is also written as
# [`frontier.csv`](data/frontier.csv), with exactly the columns `env, method, spec, bytes,
# file_bytes, factor, normalized_return, ci_low, ci_high, n_seeds, env_steps, cpu_seconds`
# (`bytes` are model bytes).

# %%
target_display(target_table(table))

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# (hidden from the book) what the regression test checks: the model and file bytes of the
# compressions of the committed agents, which are the same on every machine (the distilled and
# fine-tuned models, and every return, depend on the processor's arithmetic)
bytes_table(frame)

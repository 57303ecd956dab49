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
# # Pruning
#
# Pruning sets the weights of smallest magnitude to zero. The study {cite:p}`guggilla2023choosing`
# prunes its trained agents at increasing levels and plots the return against the fraction pruned
# (its Fig 3). This chapter repeats that for both environments with three ways of choosing what to
# remove: *global* (the smallest weights across all layers, the study's method), *per-layer* (the
# same fraction of every layer) and *structured* (whole hidden neurons, so that the network really
# becomes narrower). Every point is the mean over training seeds with a 95% t confidence
# interval over the per-seed values.
#
# **Prerequisites.** The trained checkpoints (chapter [Setup](00-setup)). The chapter runs its
# sweep (the same jobs as `rlcomp sweep sweeps/01-pruning.<profile>.yaml`) through the results
# store `results/rlcomp.sqlite` (`results/smoke.sqlite` in the `smoke` profile), so jobs already
# stored are not run again.

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown
from myst_nb import glue

from rlcomp.analysis.claims import minor_compression_gain
from rlcomp.analysis.figures import fig3_pruning_return, level_lines
from rlcomp.analysis.plotting import book_figure, declutter, readable, shared_legend
from rlcomp.analysis.tables import portable, sweep_note, wide_table
from rlcomp.analysis.verdict_table import claim_markdown
from rlcomp.experiments.plans import PRUNING, chapter_results

# %% tags=["parameters"]
profile = "full"
envs = None
train_seeds = None
episodes = None
levels = None
store = None
workers = None

# %% tags=["remove-stderr"]
results = chapter_results(PRUNING, profile, envs=envs, train_seeds=train_seeds,
                          episodes=episodes, levels=levels, store=store, workers=workers)
frame, envs = results.frame, results.envs
Markdown(sweep_note(results.sweep, results.run))

# %% [markdown]
# ## Return against the fraction pruned (Fig 3)

# %% tags=["remove-output"]
fig, axes = book_figure(1, len(envs), height=3.4)
fig3 = {env: fig3_pruning_return(frame, ax, env=env) for env, ax in zip(envs, axes[0], strict=True)}
declutter(shared_legend(fig))
glue("fig-pruning-return", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-pruning-return
# :name: fig-pruning-return
#
# Poster Fig 3: % pruned vs return, both environments. Mean return over the evaluation episodes
# against the percentage of weights pruned; one line per way of pruning, the dense agent at 0%.
# Bands: 95% t confidence intervals over training seeds.
# ```

# %%
Markdown(claim_markdown(minor_compression_gain, frame))

# %% [markdown]
# ## What pruning saves
#
# Unstructured pruning leaves the shape of every matrix as it is: a dense kernel still multiplies
# the zeros, so the time per decision does not fall; only the compact file (bitmask plus
# nonzeros) shrinks. Structured pruning removes neurons, so the network itself, its arithmetic and
# its file all shrink. {numref}`fig-pruning-cost` shows the file size and the policy's time per
# decision in ONNX Runtime.

# %% tags=["remove-output"]
fig, axes = book_figure(2, len(envs), height=6.4)
for env, ax_bytes, ax_latency in zip(envs, axes[0], axes[1], strict=True):
    level_lines(frame, ax_bytes, env=env, level="prune", metric="bytes")
    level_lines(frame, ax_latency, env=env, level="prune", metric="latency_onnx_median_s")
declutter(shared_legend(fig))
glue("fig-pruning-cost", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-pruning-cost
# :name: fig-pruning-cost
#
# Not in the poster: what pruning saves. Top: kilobytes (10^3 bytes) of the compact file.
# Bottom: median batch-1 decision latency in ONNX Runtime (one thread), in microseconds. Lines
# and bands as in {numref}`fig-pruning-return`.
# ```

# %% [markdown]
# ## Headline numbers
#
# The returns behind {numref}`fig-pruning-return`: mean over training seeds, with the 95%
# confidence interval in brackets when there is more than one seed.

# %%
wide_table(fig3, "prune", metric="return_mean")

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# (hidden from the book) what the regression test checks: the numbers above that are the same
# on every x86-64 processor; HalfCheetah's returns move with another processor's last bits
# (tests/test_portable_regression.py checks its policies instead)
portable(wide_table(fig3, "prune", metric="return_mean"))

# %% [markdown]
# ## Data
#
# Every measurement behind this chapter is a row of [`results.csv`](data/results.csv) (one row per
# checkpoint, spec, fine-tuning, training seed and metric, with the provenance of its job), written
# by [Verdicts](05-verdicts) from the results store.

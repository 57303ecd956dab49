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
# # Findings: which compression to choose
#
# The chapters that follow measure one method at a time. This page puts every model they
# measured on one map, to answer the question someone shipping a policy asks: **which
# compression keeps how much of the agent's return, at what file size and at what speed?** Every
# method and level of the study is one point: the poster's pruning, rank reduction and int8, naive
# and fine-tuned, alone and composed (chapters [Pruning](01-pruning), [Low rank](02-low-rank),
# [Quantization](03-quantization), [Fine-tuning](04-fine-tuning)), and what goes
# [beyond the poster](06-beyond-the-poster): fewer bits, gradual pruning and distilled students.
#
# How the numbers are made:
#
# - **Return** is normalized per environment and training seed: 100% is the uncompressed (dense)
#   agent, 0% a policy acting at random on the same episodes. Each point is the mean over training
#   seeds with a 95% Student-t interval.
# - **Size** is the policy's whole file (`.safetensors`: weights, scales, sparse masks and the
#   header), in kB (1 kB = 1,000 bytes); the factor is the dense float32 file's size over it.
# - **Speed** is the policy's own time for one decision: eager PyTorch, batch 1, in a fresh
#   process pinned to one core with one thread, without the simulator. The microseconds are this
#   machine's; the ratio to the dense policy, measured in interleaved A/B pairs in the same
#   process, is the figure to compare. Fine-tuning keeps a network's layers and their storage, so
#   a fine-tuned model (gradual pruning and quantization-aware training included) shows the time
#   of the naive model with the same layers, which is what the jobs time.
# - A model **keeps the return** when its *mean* normalized return over training seeds is at
#   least 95%, the rule of chapter [Beyond the poster](06-beyond-the-poster); the interval beside
#   each number says how sure that is.
# - A model measured in several chapters (the dense agent, int8, ...) is counted once, from the
#   first chapter that measures it.
#
# **Prerequisites.** None to read. To run, the chapters' sweeps (01 to 04 and 06): this chapter
# runs whatever of them the results store lacks, then reads them.

# %%
import matplotlib.pyplot as plt
from IPython.display import HTML
from myst_nb import glue

from rlcomp.analysis.findings import (
    env_findings,
    file_bytes_table,
    findings_html,
    frontier_html,
    pareto_figure,
    study_points,
    write_points,
)
from rlcomp.analysis.plotting import readable
from rlcomp.experiments.plans import BOOK_DATA, CHAPTERS, chapter_results

# %% tags=["parameters"]
profile = "full"
envs = None
train_seeds = None
episodes = None
store = None
workers = None
data_dir = None  # where points.csv goes; None: book/data in the full profile only

# %% tags=["remove-stderr"]
frames = {chapter: chapter_results(chapter, profile, envs=envs, train_seeds=train_seeds,
                                   episodes=episodes, store=store, workers=workers).frame
          for chapter in CHAPTERS}
points = study_points(frames)
findings = env_findings(points)
data_dir = data_dir or (BOOK_DATA if profile == "full" else None)
written = write_points(points, f"{data_dir}/points.csv") if data_dir else None
glue("findings-box", HTML(findings_html(findings)), display=False)

# %% [markdown]
# ## What we found
#
# ```{glue} findings-box
# ```

# %% tags=["remove-output"]
fig = pareto_figure(points)
glue("fig-pareto", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-pareto
# :name: fig-pareto
#
# Not in the poster: normalized return (100% = the dense agent, 0% = random actions; mean over
# training seeds, error bars 95% t intervals) against the size of the policy's file (left) and
# against the policy's time per decision (right; the horizontal bars are the time's interval),
# one row per environment. Every model of the study is a point, coloured and shaped by its group;
# an open marker is one of the poster's methods fine-tuned; the star is the dense agent. The grey
# steps are the frontier: the best return reachable within a file size or a time. Dashed: 95% of
# the dense return. Models whose mean return is below -20% sit in the grey strip at the bottom.
# ```

# %% [markdown]
# ## The frontier
#
# The models no other model beats on both counts: no other has a smaller file (or a shorter
# policy time) *and* a higher mean return. Read a row as "to keep this much of the return, a file
# (or a decision) this small is enough". The column *on the frontier of* says on which of the two
# it lies; under each model its group, under its file size the factor against the dense file,
# under its time the ratio to the dense policy's (95% t intervals in brackets).

# %%
HTML(frontier_html(points))

# %% [markdown]
# Every point of {numref}`fig-pareto`, with its group, sizes, return, policy time and the chapter
# it comes from: {download}`points.csv <data/points.csv>` (columns `env, group, family, poster,
# model, spec, finetuned, chapter, also_in, normalized_return, ci_low, ci_high, n_seeds,
# file_bytes, model_bytes, file_factor, model_factor, policy_us, policy_us_low, policy_us_high,
# time_ratio, time_ratio_low, time_ratio_high, time_spec`; returns in %, times in µs, `time_spec`
# the naive model whose time a fine-tuned one shows).

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# (hidden from the book) what the regression test checks: the file and model bytes of the
# compressions of the committed agents, which are the same on every machine (distilled and
# fine-tuned models depend on the processor's arithmetic and are left out)
file_bytes_table(points)

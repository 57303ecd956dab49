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
# # Quantization
#
# Quantization stores each weight in fewer bits. The study {cite:p}`guggilla2023choosing`
# quantizes its agents from 32 to 8 bits and reports two things in its text: CPU and RAM
# utilization do not change, and the stored model shrinks from 0.3 MB to 0.1 MB, against the
# 0.075 MB that one byte per parameter would take. This chapter quantizes the trained agents of
# both environments after training (post-training quantization, PTQ: every weight and bias to
# int8, one float32 scale per output channel and one per bias vector) and measures the return,
# the stored bytes, the CPU and memory of evaluation, and the time of one decision in PyTorch
# and in ONNX Runtime. Beside the int8 agent stand three more models: pruned 50% then int8, rank
# reduced 50% then int8 (two compressions composed), and rank reduced 75% in float32 (about half
# the parameters: a model whose arithmetic, not only its file, shrinks). Every number is the mean
# over training seeds with a 95% t confidence interval.
#
# The study quantized *in training*. Quantization-aware training (QAT) trains the int8 network
# itself, with straight-through gradients through the rounding, so it needs training steps: it is
# measured beside post-training quantization in chapter [Fine-tuning](04-fine-tuning).
#
# **Prerequisites.** The trained checkpoints (chapter [Setup](00-setup)). The chapter runs its
# sweep (the same jobs as `rlcomp sweep sweeps/03-quantization.<profile>.yaml`) through the
# results store `results/rlcomp.sqlite` (`results/smoke.sqlite` in the `smoke` profile), so jobs
# already stored are not run again.

# %%
from functools import partial

import matplotlib.pyplot as plt
from IPython.display import Markdown
from myst_nb import glue

from rlcomp.analysis.claims import POSTER_STORAGE_MB, quant_cpu_ram, quant_storage
from rlcomp.analysis.figures_bars import latency_bars, spec_bars, storage_bars
from rlcomp.analysis.plotting import book_figure, declutter, readable, shared_legend
from rlcomp.analysis.selection import QUANT_MODELS
from rlcomp.analysis.tables import latency_ratios, portable, spec_table, sweep_note
from rlcomp.analysis.verdict_table import claim_markdown
from rlcomp.experiments.plans import QUANTIZATION, chapter_results

# %% tags=["parameters"]
profile = "full"
envs = None
train_seeds = None
episodes = None
levels = None
store = None
workers = None

# %% tags=["remove-stderr"]
results = chapter_results(QUANTIZATION, profile, envs=envs, train_seeds=train_seeds,
                          episodes=episodes, levels=levels, store=store, workers=workers)
frame, envs = results.frame, results.envs
Markdown(sweep_note(results.sweep, results.run))

# %% [markdown]
# ## Return after quantization
#
# Rounding a weight to the nearest of 255 levels of its row moves it by at most half a step, so
# the int8 network computes almost the function of the dense one; {numref}`fig-quant-return`
# shows what that does to the return, beside the compositions and the rank-reduced model.

# %% tags=["remove-output"]
fig, axes = book_figure(len(envs), 1, height=2.8 * len(envs))
for env, ax in zip(envs, axes[:, 0], strict=True):
    spec_bars(frame, ax, env=env, models=QUANT_MODELS, metric="return_mean")
declutter(shared_legend(fig))
glue("fig-quant-return", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-quant-return
# :name: fig-quant-return
#
# Not in the poster: its quantization is reported in text. Mean return over the evaluation episodes
# of the dense agent, its int8 version (post-training quantization), pruned 50% then int8, rank
# reduced 50% then int8, and rank reduced 75% in float32. Error bars: 95% t confidence intervals
# over training seeds.
# ```

# %% [markdown]
# The returns behind the figure (mean over training seeds, 95% CI in brackets):

# %%
spec_table(frame, QUANT_MODELS, ["return_mean"], envs=envs)

# %% [markdown]
# ## Storage: 32 -> 8 bits
#
# The theoretical size of the int8 model is one byte per parameter (weights and biases): the
# parameter count times 8 bits. Our file holds exactly those bytes plus what is needed to read
# them back: one float32 scale per output channel and one per bias vector, and the safetensors
# header that describes the layers. The dense file is the same container with four bytes per
# parameter. {numref}`fig-quant-storage` sets our three sizes
# beside the study's 0.3 MB, 0.1 MB and 0.075 MB.

# %% tags=["remove-output"]
fig, axes = book_figure(1, len(envs), height=3.6)
for env, ax in zip(envs, axes[0], strict=True):
    storage_bars(frame, ax, env=env, reported=POSTER_STORAGE_MB)
declutter(shared_legend(fig))
glue("fig-quant-storage", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-quant-storage
# :name: fig-quant-storage
#
# Not in the poster: the sizes its text reports, drawn. Storage in MB (10^6 bytes): the dense
# float32 file, our int8 file and the int8 theoretical size (one byte per parameter); hatched, the
# study's reported sizes. The measured sizes do not vary between training seeds.
# ```

# %%
Markdown(claim_markdown(quant_storage, frame))

# %% [markdown]
# The bytes behind the figure for every model of the chapter: the compact file, the theoretical
# size (parameters x bits / 8, counting only the nonzeros where a sparse layout is smaller), the
# parameters and the int8 scales the file adds.

# %%
spec_table(frame, QUANT_MODELS, ["bytes", "theoretical_bytes", "params", "scales"], envs=envs)

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# (hidden from the book) what the regression test checks: the sizes above to the byte
spec_table(frame, QUANT_MODELS,
           {"file bytes": "bytes", "theoretical bytes": "theoretical_bytes",
            "parameters": "params", "scales": "scales"},
           envs=envs, formats=dict.fromkeys(["file bytes", "theoretical bytes", "parameters",
                                             "scales"], "{:,.0f}"))

# %% [markdown]
# ## CPU and RAM
#
# The study measured the CPU utilization and the share of RAM of the evaluating process. We
# measure the same (one core, one thread, sampled over the whole evaluation), but the simulator
# makes most of both: the policy takes a few microseconds of each environment step. So beside
# them stands the policy's own time per decision: a fresh process pinned to one core with one
# thread runs blocks of decisions of the compressed and the dense policy in turn (at least 30
# interleaved pairs), and the ratio of their times is the measure ({numref}`fig-quant-cpu`,
# lower panels). What should change is counted first, the same on every machine: the
# multiply-accumulates of one decision and the bytes of weights it reads.

# %%
# NBVAL_CHECK_OUTPUT
spec_table(frame, QUANT_MODELS, ["macs_per_decision", "weight_bytes_read"], envs=envs)

# %% tags=["remove-output"]
fig, axes = book_figure(2 * len(envs), 1, height=2.6 * 2 * len(envs))
for env, ax_util, ax_own in zip(envs, axes[0::2, 0], axes[1::2, 0], strict=True):
    spec_bars(frame, ax_util, env=env, models=QUANT_MODELS, metric="cpu_percent")
    spec_bars(frame, ax_own, env=env, models=QUANT_MODELS, metric="policy_time_ratio")
declutter(shared_legend(fig))
glue("fig-quant-cpu", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-quant-cpu
# :name: fig-quant-cpu
#
# Not in the poster: its quantization text reports no change of CPU. CPU, two panels per
# environment. Upper: CPU % of the evaluating process over the whole evaluation (the study's
# measure, environment-dominated). Lower: the policy's own time per decision as a ratio to the dense
# policy's (eager PyTorch, batch 1, interleaved A/B runs in a fresh pinned process). Error bars: 95%
# t confidence intervals over training seeds.
# ```

# %%
Markdown(claim_markdown(partial(quant_cpu_ram, metric="policy_time_ratio"), frame))

# %%
Markdown(claim_markdown(partial(quant_cpu_ram, metric="cpu_percent"), frame))

# %% [markdown]
# The share of RAM of the evaluating process is mostly the Python runtime, PyTorch and
# the environment, whatever the model (each job runs in a fresh worker, and the share is sampled
# over the whole evaluation). The cleaner measure is the model's own footprint: two fresh processes,
# pinned to one core, import the same modules and run the same decisions, one with the model loaded
# from its compact file and one without a model; the footprint is the difference of their resident
# memory ({numref}`fig-quant-ram`, lower panels).

# %% tags=["remove-output"]
fig, axes = book_figure(2 * len(envs), 1, height=2.6 * 2 * len(envs))
for env, ax_share, ax_own in zip(envs, axes[0::2, 0], axes[1::2, 0], strict=True):
    spec_bars(frame, ax_share, env=env, models=QUANT_MODELS, metric="ram_percent")
    spec_bars(frame, ax_own, env=env, models=QUANT_MODELS, metric="isolated_footprint_bytes",
              scale=1e-6, ylabel="Model footprint (MB)")
declutter(shared_legend(fig))
glue("fig-quant-ram", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-quant-ram
# :name: fig-quant-ram
#
# Not in the poster: its quantization text reports no change of RAM. Memory, two panels per
# environment. Upper: % RAM of the evaluating process (the study's measure). Lower: the model's
# footprint in an isolated inference process, resident MB with the model minus without it (its
# tensors, the copies loading left alive, activations and kernel workspace). Error bars: 95% t
# confidence intervals over training seeds.
# ```

# %%
Markdown(claim_markdown(partial(quant_cpu_ram, metric="ram_percent"), frame))

# %%
Markdown(claim_markdown(partial(quant_cpu_ram, metric="isolated_footprint_bytes"), frame))

# %% [markdown]
# The footprint is a small difference between two resident sizes that are each far larger than
# the model, and it varies from one pair of processes to the next; read a difference between
# models against its interval and against the sizes of the files above. The isolated processes'
# resident memory in MB, with and without the model:

# %%
# NBVAL_IGNORE_OUTPUT
spec_table(frame, QUANT_MODELS,
           ["isolated_model_rss_bytes", "isolated_baseline_rss_bytes", "isolated_footprint_bytes"],
           envs=envs)

# %% [markdown]
# ## Time per decision: PyTorch eager and ONNX Runtime
#
# How fast an int8 model runs depends on the runtime. In eager PyTorch our int8 layer
# dequantizes its weights (int8 times scale, back to float32) on every call before the matrix
# product, so each decision does more work than the dense model's. ONNX Runtime, the runtime a
# deployment would use, sees the int8 weights and their scales as constants of the graph and
# folds the dequantization once when the session starts; from then on a decision is the dense
# model's float arithmetic. The model rank reduced 75% multiplies by two thin factors instead of
# one square matrix: half the multiply-adds, but twice the operations, and whether that saves
# time at batch size 1 depends on what each operation costs the runtime beyond its arithmetic
# ({numref}`fig-quant-latency`).

# %% tags=["remove-output"]
fig, axes = book_figure(1, len(envs), height=3.4)
latency = {env: latency_bars(frame, ax, env=env,
                             models={"dense": "dense", "int8": "quant=8",
                                     "low rank 75%": "lowrank=0.75"})
           for env, ax in zip(envs, axes[0], strict=True)}
declutter(shared_legend(fig))
glue("fig-quant-latency", readable(fig), display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-quant-latency
# :name: fig-quant-latency
#
# Not in the poster: median latency of one decision at batch size 1 in microseconds (one thread,
# after warm-up) in PyTorch eager and in ONNX Runtime, for the dense agent, its int8 version and the
# model rank reduced 75%. Error bars: 95% t confidence intervals over training seeds.
# ```

# %% [markdown]
# Each model's median latency as a multiple of the dense model's in the same runtime:

# %%
# NBVAL_IGNORE_OUTPUT
latency_ratios(latency)

# %% [markdown]
# ## Headline numbers
#
# The return and the compact file of each model: mean over training seeds, with the 95%
# confidence interval in brackets when there is more than one seed.

# %%
spec_table(frame, QUANT_MODELS, ["return_mean", "bytes"], envs=envs)

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# (hidden from the book) what the regression test checks: the numbers above that are the same
# on every x86-64 processor; HalfCheetah's returns move with another processor's last bits
# (tests/test_portable_regression.py checks its policies instead)
portable(spec_table(frame, QUANT_MODELS, ["return_mean", "bytes"], envs=envs))

# %% [markdown]
# ## Data
#
# Every measurement behind this chapter is a row of [`results.csv`](data/results.csv) (one row per
# checkpoint, spec, fine-tuning, training seed and metric, with the provenance of its job), written
# by [Verdicts](05-verdicts) from the results store.

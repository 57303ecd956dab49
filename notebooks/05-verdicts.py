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
# # Verdicts
#
# Every claim of the study {cite:p}`guggilla2023choosing` that the chapters measure, in one table,
# one row per claim, measure and environment: the poster's sentence, quoted, with the poster's
# figure; what we measured, in words and units; where its interval must lie for the claim to be
# confirmed (the margin); the estimate with its 95% confidence interval on each environment; the
# verdict on each environment and over both (a claim holds over both only if it holds on each;
# *environment-dependent* when one environment confirms it and the other refutes it); and a link
# to our figure.
#
# How the numbers are made:
#
# - **The unit is the training seed.** Each environment's agents were trained from several
#   seeds; each measurement is one number per seed (each seed's mean over its evaluation
#   episodes, or a paired difference), and its interval is the Student-t interval over the seeds.
#   Its coverage, simulated at the study's numbers of seeds and episodes from distributions shaped
#   like ours (skewed, with failure episodes), is on [How the numbers were made](09-methods),
#   with those numbers.
# - **Returns are normalized** per environment and seed as 100 x (x - random) / (dense - random):
#   dense is 100, uniformly random actions (evaluated on the same episodes) are 0. Raw returns
#   never cross environments.
# - **Costs are the policy's own** where the claim is about the model: the policy's time per
#   decision as a ratio to dense, from interleaved A/B runs in a fresh process pinned to one core
#   with one thread, and the isolated footprint (resident bytes of a fresh process that loads only
#   the model, minus the same process without it). The study's own measures (evaluation wall time,
#   CPU %, RAM %) are measured by the same rules and marked *environment-dominated*: the
#   simulator's time and memory make most of them, and they drift with the machine between runs
#   (load, clock frequency, page cache) in a way the interval over seeds does not hold: repeated
#   runs on one machine moved some of their verdicts while every verdict on returns, the policy's
#   own time, footprints and sizes held. So they are **not judged**: the table shows what the
#   rule reads on this run, and no verdict rests on it.
# - **Every margin** (what counts as "unchanged", "minor", "much more", "around 30%") is a constant
#   of `rlcomp/analysis/claims.py` (`MARGINS`), fixed before the full-profile data was read; the
#   table's margin column quotes it.
#
# The table is also written as [`verdicts.csv`](data/verdicts.csv), and the results behind every
# chapter as [`results.csv`](data/results.csv) (one row per checkpoint, spec, fine-tuning and
# metric, with the training seed and the provenance of the job).
#
# **Prerequisites.** The sweeps of chapters 01 to 04 (this chapter runs any of their jobs the
# store lacks, which in the `full` profile is none after the chapters ran).

# %%
from IPython.display import HTML
from myst_nb import glue

from rlcomp.analysis.book_data import write_book_data
from rlcomp.analysis.verdict_table import all_claims, claims_html, portable_claims
from rlcomp.experiments.plans import (
    BOOK_DATA,
    POSTER_CHAPTERS,
    chapter_results,
    default_store,
)
from rlcomp.experiments.store import ResultStore

# %% tags=["parameters"]
profile = "full"
envs = None
train_seeds = None
episodes = None
levels = None
store = None
workers = None
data_dir = None  # where results.csv and verdicts.csv go; None: book/data in the full profile only

# %% tags=["remove-stderr"]
frames = {chapter: chapter_results(chapter, profile, envs=envs, train_seeds=train_seeds,
                                   episodes=episodes, levels=levels, store=store,
                                   workers=workers).frame
          for chapter in POSTER_CHAPTERS}
results = all_claims(frames)
data_dir = data_dir or (BOOK_DATA if profile == "full" else None)
if data_dir:
    with ResultStore(store or default_store(profile), readonly=True) as opened:
        write_book_data(frames, opened, results, data_dir)

# %% [markdown]
# ## Every claim and its verdict

# %%
glue("claims-table", HTML(claims_html(results)), display=False)
HTML(claims_html(results))

# %% [markdown]
# ## Headline numbers
#
# The verdicts that rest on returns and sizes, which are the same on every run (timing, CPU and
# memory measures vary from run to run and machine to machine):

# %%
HTML(claims_html(results, deterministic_only=True))

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# (hidden from the book) what the regression test checks: the verdicts measured so that they are
# the same on every x86-64 processor: sizes on every environment, returns without HalfCheetah
# (whose returns move with another processor's last bits), nothing measured by a clock
HTML(claims_html(portable_claims(frames)))

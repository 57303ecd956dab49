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
# Every claim of the study {cite:p}`guggilla2023choosing` that the chapters measure, in one table:
# the claim, the figure where the study shows it and where this book does, what we measured (a
# difference paired by environment and training seed, with its 95% bootstrap confidence
# interval), the rule that turns the interval into a verdict, and the verdict. Each claim's rule
# and margin were fixed in `rlcomp/analysis/claims.py` before any full-profile number existed. The
# book's introduction shows the same table.
#
# **Prerequisites.** The sweeps of chapters 01 to 04 (this chapter runs any of their jobs the
# store lacks, which in the `full` profile is none after the chapters ran).

# %%
from IPython.display import HTML
from myst_nb import glue

from rlcomp.analysis.verdict_table import all_claims, claims_html, portable_claims
from rlcomp.experiments.plans import CHAPTERS, chapter_results

# %% tags=["parameters"]
profile = "full"
envs = None
train_seeds = None
episodes = None
levels = None
store = None
workers = None

# %% tags=["remove-stderr"]
frames = {chapter: chapter_results(chapter, profile, envs=envs, train_seeds=train_seeds,
                                   episodes=episodes, levels=levels, store=store,
                                   workers=workers).frame
          for chapter in CHAPTERS}
results = all_claims(frames)

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

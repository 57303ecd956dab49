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
# # How the numbers were made
#
# This page says how every number in the book was made: which agents were compressed and how
# they were trained, how each compressed model was evaluated, what one replicate is, how the
# intervals are computed and how often they cover the truth at the study's size, the margin each
# of the poster's claims {cite:p}`guggilla2023choosing` is tested against, which measures mostly
# measure the simulator rather than the policy, how returns are put on a common scale, and the
# machine that measured them.
#
# **Prerequisites.** None beyond the repository: this page runs no sweep. It reads the committed
# checkpoints (`checkpoints/*.json`), the table of every measurement behind the book
# (`book/data/results.csv`) and the code's own settings, and it runs one small simulation. Every
# number below is computed on this page from those.

# %%
import dataclasses

import pandas as pd
from IPython.display import HTML, Markdown
from myst_nb import glue

from rlcomp.analysis.coverage import (
    BOOK_SIMS,
    OURS,
    SCENARIO_WORDS,
    monte_carlo_se,
    simulate_coverage,
)
from rlcomp.analysis.methods import (
    agents_table,
    cost_protocol_table,
    coverage_table,
    environment_dominated_table,
    html_table,
    machine_table,
    margins_html,
    margins_table,
    normalization_example,
    protocol_table,
    repository_path,
    study_facts,
)
from rlcomp.analysis.training import load_checkpoints
from rlcomp.stats import IntervalSettings

# %% tags=["parameters"]
profile = "full"
checkpoint_dir = "checkpoints"
results_csv = "book/data/results.csv"
verdicts_csv = "book/data/verdicts.csv"
coverage_sims = None  # simulated studies per scenario; None: the profile's (BOOK_SIMS)
coverage_seed = 0

# %% [markdown]
# ## The agents
#
# Two agents, as in the poster: a Double DQN agent {cite:p}`vanhasselt2016deep` on the discrete
# `LunarLander-v3` and a policy-gradient agent with a value baseline and generalized advantage
# estimation {cite:p}`schulman2016high`, optimising PPO's clipped objective
# {cite:p}`schulman2017proximal`, on the continuous `HalfCheetah-v5` (Gymnasium's successors of
# the poster's Gym v2 tasks). Each was trained from several seeds with the same settings; for
# each seed the training run kept the snapshot whose evaluation on seeds reserved for selection
# was best, and that snapshot was then evaluated on other episode seeds, so the reported return
# carries no selection bias. The compressed network is the Q-network of the Double DQN agent and
# the policy (mean) network of the policy-gradient agent; the table reads every number from the
# checkpoints' JSON files. [Setup](00-setup) shows each seed and its training curve.

# %%
checkpoints = load_checkpoints(repository_path(checkpoint_dir))
HTML(html_table(agents_table(checkpoints)))

# %% [markdown]
# ## The evaluation protocol
#
# A *job* is one compressed model (one compression method at one level, applied to one training
# seed's agent, with or without fine-tuning) evaluated for a number of episodes from an
# evaluation seed. The greedy action (Double DQN) or the mean action (policy gradient) is taken;
# episode *i* of an evaluation with seed *s* starts from environment seed *s + i*, so every model
# of a training seed, the uncompressed agent and a uniformly random policy included, plays
# exactly the same episodes. Evaluations run pinned to one core with one PyTorch thread, the
# poster's "isolated processor". The book's chapters were run in the `full` profile; the `smoke`
# profile runs the same code with tiny budgets for continuous integration:

# %%
# NBVAL_CHECK_OUTPUT
# portable by construction: the profiles' settings, from the code
HTML(html_table(protocol_table()))

# %% [markdown]
# The policy's own time per decision is measured apart from the episodes: in a fresh process
# pinned to one core, blocks of decisions of the compressed policy and of the uncompressed one
# alternate (A/B pairs), after a warm-up, and the ratio of their times is reported with its
# interval. The settings recorded with the results:

# %%
results = pd.read_csv(repository_path(results_csv))
HTML(html_table(cost_protocol_table(results)))

# %% [markdown]
# ## The unit of replication and the interval
#
# The unit of replication is the **training seed** {cite:p}`agarwal2021deep`: an interval says
# how a result varies from one trained agent to another. Episodes enter only through each seed's
# value (the mean over that seed's episodes, or a paired difference of two such means), so more
# episodes make each seed's value less noisy but never count as replicates. The book's interval
# is:

# %%
settings = IntervalSettings()
Markdown(f"- method: **{settings.method}** (Student-t interval of the mean over the per-seed "
         f"values, with one degree of freedom fewer than there are seeds);\n"
         f"- statistic: **{settings.statistic}** over training seeds;\n"
         f"- confidence: **{settings.confidence:.0%}**.")

# %% [markdown]
# The percentile bootstrap over seeds is used only for the interquartile mean, which has no t
# interval. A claim is a paired comparison (a compressed model against the uncompressed agent of
# the same training seed, or one method against another), so its interval is taken over the
# per-seed differences, which keeps the pairing.
#
# ### Does the interval cover the truth?
#
# With a handful of seeds, an interval's nominal coverage is an assumption, not a fact: returns
# are skewed and some episodes fail. So the coverage is simulated at the study's size (the full
# profile's training seeds and episodes) from distributions shaped like the committed agents'
# final evaluations:
# many simulated studies per scenario, each with its interval, counting how often the interval
# contains the true value. The Monte Carlo standard error says how precisely the simulation
# measured each coverage (`benchmarks/interval_coverage.py` runs the same simulation with more
# studies; `rlcomp/analysis/coverage.py` documents every parameter of the scenarios).

# %%
sims = int(coverage_sims or BOOK_SIMS[profile])
coverage_rows, coverage_summary = simulate_coverage(sims, seed=coverage_seed)
Markdown(f"{sims:,} simulated studies per scenario, each of {coverage_summary['n_seeds']} "
         f"training seeds x {coverage_summary['episodes']} episodes, seed {coverage_seed}; the "
         f"bootstrap draws {coverage_summary['bootstrap_reps']:,} resamples per study.")

# %%
# NBVAL_CHECK_OUTPUT
# portable by construction: a seeded simulation, no measurement
HTML(html_table(coverage_table(coverage_rows, sims)))

# %%
worst = min(OURS, key=lambda s: coverage_summary["coverage_by_scenario"][s])
lowest = coverage_summary["coverage"]
n = coverage_summary["n_seeds"]
boot = coverage_summary["percentile_bootstrap_by_scenario"]
Markdown(
    f"Over the three scenarios shaped like our data the t interval covers at least "
    f"**{lowest:.1%}** (± {100 * monte_carlo_se(lowest, sims):.1f} pp, in the scenario "
    f"*{SCENARIO_WORDS[worst]}*), against a nominal {coverage_summary['confidence']:.0%}; the "
    f"percentile bootstrap over the same seeds covers only "
    f"{min(boot[s] for s in OURS):.1%} to {max(boot[s] for s in OURS):.1%}, because with {n} "
    f"seeds its interval is little wider than the range of the seeds' values. When an agent is "
    f"destroyed on some seeds and not others (the bimodal scenario), no interval over {n} "
    f"seeds covers well (t: {coverage_summary['coverage_bimodal']:.1%}): many studies of {n} "
    f"seeds contain no destroyed seed at all. The claims therefore judge a destroyed agent "
    f"apart: the fine-tuning claim considers only compressions that hurt but did not destroy "
    f"the agent.")

# %% [markdown]
# ## Normalized returns
#
# Raw returns never cross environments: a LunarLander return and a HalfCheetah return are on
# different scales. Where the book compares or pools returns it normalizes them per environment
# and training seed as
#
# **normalized return = 100 × (*x* − *random*) / (*dense* − *random*) %**,
#
# with *x* the compressed model's mean return, *dense* the uncompressed agent's and *random* a
# uniformly random policy's, all three of the same training seed on the same evaluation episodes
# (`rlcomp.stats.normalized`). 100% is the uncompressed agent, 0% a random policy; the claims'
# margins on returns are in percentage points (pp) of this scale. For example, one pruned model
# of each environment (the column headers name it and the training seed), from the committed
# results:

# %%
HTML(html_table(normalization_example(results)))

# %% [markdown]
# ## The claims and their margins
#
# Each claim of the poster is tested per environment by one of these rules, against a margin
# fixed in `rlcomp/analysis/claims.py` before any full-profile number was read: *no change*
# (confirmed if the whole interval lies within the tolerance around zero), *reduces* (confirmed
# if it lies wholly below minus the margin), *increases* (wholly above the margin) and *at most*
# (wholly at or below it). The opposite case refutes the claim; an interval that straddles the
# boundary leaves it *not resolved*; a claim confirmed on one environment and refuted on the other
# is *environment-dependent*. Where a claim is about the existence of a gain at several levels
# (minor compression), the confidence is Bonferroni-adjusted for the number of compressions
# compared. The table is produced from the claim functions themselves; [Verdicts](05-verdicts)
# applies them to the data.

# %%
# NBVAL_CHECK_OUTPUT
# portable by construction: the claims' rules and margins, from the code
HTML(margins_html(margins_table()))

# %% [markdown]
# ## What is environment-dominated, and so not judged
#
# The poster measured evaluation wall time, CPU utilisation and RAM share while the agent played.
# For networks this small those numbers mostly measure the simulator and the Python runtime: the
# policy's decision is a small part of an environment step, one busy thread shows about the same
# CPU utilisation whatever the policy, and the process's memory is the interpreter, the numerical
# libraries and the simulator, beside which the networks are a fraction of a percent. They also
# drift with the machine between runs (load, clock frequency, page cache) in a way an interval
# over seeds does not hold. The book measures them by the same rules and shows what the rule
# reads, but their verdict is **not judged**. Beside each of them it measures the policy's own
# cost: the time per decision against dense (A/B, above) and the isolated footprint (the
# resident memory of a fresh process that loads only the model, minus the same process without
# it). The environment-dominated metrics:

# %%
# NBVAL_CHECK_OUTPUT
# portable by construction: names and units, from the code
HTML(html_table(environment_dominated_table()))

# %% [markdown]
# ## The machine
#
# Floating-point results computed through different SIMD paths differ in their last bits, and a
# chaotic simulation (HalfCheetah) turns that into a different episode; timings depend on the
# processor outright. So every result records the code, the processor and the library versions
# it was measured with; the results behind the book were measured with:

# %%
HTML(html_table(machine_table(results)))

# %% tags=["remove-cell"]
# (hidden from the book) the numbers the Limitations page quotes, glued for it
verdicts = pd.read_csv(repository_path(verdicts_csv))
for key, value in study_facts(checkpoints, results, verdicts).items():
    glue(f"methods-{key.replace('_', '-')}", value, display=False)

# %% [markdown]
# The executed chapters record the machine that ran them in their notebook metadata, and each
# checkpoint's JSON file records the machine that trained it.
#
# ## The data
#
# Every measurement behind chapters 01 to 05, one row per job and metric with its training seed,
# evaluation seed and provenance: {download}`results.csv <data/results.csv>`. The verdicts, one
# row per claim, environment and measure: {download}`verdicts.csv <data/verdicts.csv>`. The
# models of [Beyond the poster](06-beyond-the-poster): {download}`frontier.csv <data/frontier.csv>`.
# What these numbers cannot say is in [Limitations](limitations).

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# portable by construction: a seeded simulation and the code's settings, no measurement
# (hidden from the book) the page's headline, checked by the regression test: the coverage of
# the book's interval at the study's size (seeded, so the same on every run) and the number of
# claim tests and their margins.
{"coverage": coverage_summary["coverage"], "coverage_bimodal": coverage_summary["coverage_bimodal"],
 "sims": sims, "interval": dataclasses.asdict(settings),
 "claim_tests": len(margins_table()), "not_judged": int((margins_table()["verdict"]
                                                          == "not judged").sum())}

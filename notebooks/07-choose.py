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
# # Choosing a compression for one policy
#
# The chapters before this one measure methods over five agents per environment. Someone with
# one trained policy asks a narrower question: **which compression of *this* policy gives the
# smallest file that still keeps 95% of its return?** `rlcomp choose` answers it for one policy
# within a time budget. This chapter runs it on three policies: our LunarLander agent and our
# HalfCheetah agent of training seed 0, and a LunarLander policy trained by someone else's code,
# a Stable-Baselines3 DQN {cite:p}`raffin2021stable` read from SB3's own zip. For each it shows
# the frontier the search found, the recommendation and why, and then sets the recommendation
# beside the best of the poster's single methods in chapter
# [Beyond the poster](06-beyond-the-poster) at the same bound.
#
# How the search decides (the module docstrings of `rlcomp/choose/` have the details):
#
# - **Candidates.** Chapter 06's families (pruning, rank reduction, quantization to 8, 4 and 2
#   bits, their compositions, distilled students, fine-tuned gradual pruning and
#   quantization-aware training), and per-layer levels from a *sensitivity pass*: each layer alone
#   is compressed at a few levels and the variant's decisions are compared with the policy's on
#   recorded states, so that sensitive layers are spared and robust ones compressed harder.
# - **Normalized return per episode.** Every candidate plays the same episode seeds as the dense
#   and the random policy, so each episode gives a paired triple, and the normalized return 100 x
#   (x - random) / (dense - random) gets a confidence interval from the paired episodes.
# - **Racing.** Candidates play in blocks of episodes and are looked at after each block: a
#   candidate is *dropped* when its interval's upper end is below the bound, *accepted* when its
#   lower end is at least the bound, and *retired* when an accepted candidate is already smaller;
#   the confidence of each look is corrected for the number of looks (Bonferroni). A candidate
#   that trains (a student, a fine-tuning) is trained only if it could still become the
#   recommendation.
# - **Recommendation.** The accepted candidate with the fewest model bytes (the dense policy when
#   none is accepted); the **Pareto frontier** is the set of raced candidates that no other
#   candidate beats in both size and normalized return. The recommended policy is written as a
#   compressed file and as ONNX, whose decisions are checked against PyTorch on recorded states.
#
# Model bytes, the compression factor and the normalized return mean what they mean in chapter
# 06; the difference is the unit: there a model's return is the mean over five training seeds,
# here it is one policy's return over evaluation episodes.
#
# **Prerequisites.** The trained checkpoints (chapter [Setup](00-setup)); the SB3 zip
# `checkpoints/sb3/LunarLander-v3__sb3-dqn__0.zip`, trained by `checkpoints/train_sb3.py` (its
# `.json` records how); for the comparison, `book/data/frontier.csv`, which chapter 06 writes in
# the full profile. Every evaluation and build goes through the results store
# (`results/rlcomp.sqlite`, `results/smoke.sqlite` in the `smoke` profile), so running the chapter
# again reuses them; the artifacts and reports go to `results/choose/PROFILE/NAME/`.

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown
from myst_nb import glue

from rlcomp.analysis.choosing import (
    FRONTIER_FILE,
    comparison_display,
    comparison_markdown,
    comparison_table,
    frontier_display,
    headline_display,
    headline_table,
    read_frontier,
    recommendation_markdown,
    search_figure,
    searches_markdown,
)
from rlcomp.analysis.plotting import readable, use_book_style
from rlcomp.analysis.tables import portable
from rlcomp.choose.candidates import FAMILIES
from rlcomp.choose.command import run_search
from rlcomp.choose.report import candidate_dicts
from rlcomp.experiments.plans import (
    BOOK_DATA,
    ROOT,
    choose_argv,
    choose_command,
    choose_policies,
)

use_book_style()

# %% tags=["parameters"]
profile = "full"
store = None  # the results store; None: results/rlcomp.sqlite (smoke: results/smoke.sqlite)
out_dir = None  # where each policy's artifacts and report go; None: results/choose/PROFILE
sb3_policy = None  # the SB3 zip; None: checkpoints/sb3/LunarLander-v3__sb3-dqn__0.zip
frontier_csv = None  # chapter 06's table; None: book/data/frontier.csv

# %% tags=["remove-stderr"]
policies = choose_policies(sb3_policy)
runs = [run_search(choose_argv(p, profile, store=store, out=out_dir)) for p in policies]
summaries = [data for _, data in runs]
explained = [recommendation_markdown(p.label, data, candidate_dicts(result),
                                     result.config.families, FAMILIES)
             for p, (result, data) in zip(policies, runs, strict=True)]
Markdown(searches_markdown(profile, [choose_command(p, profile) for p in policies], summaries))

# %% tags=["remove-output"]
for name, (result, data) in zip(("fig-choose-lunarlander", "fig-choose-halfcheetah",
                                 "fig-choose-sb3"), runs, strict=True):
    fig = search_figure(data, candidate_dicts(result))
    glue(name, readable(fig), display=False)
    plt.close(fig)

# %% [markdown]
# ## Our LunarLander agent
#
# {numref}`fig-choose-lunarlander` shows every candidate the search raced: its model bytes on a
# log scale against its normalized return with its interval, its colour and marker saying how the
# race ended for it. The table below it lists the Pareto frontier, smallest first (model sizes in
# kB, 1 kB = 1000 bytes).

# %% [markdown]
# ```{glue:figure} fig-choose-lunarlander
# :name: fig-choose-lunarlander
#
# Not in the poster: `rlcomp choose` on our LunarLander-v3 Double DQN agent of training seed 0.
# Normalized return (% of the dense policy's gain over random actions, on the same episodes)
# against model bytes (log scale), one point per raced candidate, with one colour and marker per
# status. Error bars: the interval of the candidate's last look. Grey line: the Pareto frontier.
# Black star: the dense policy. Ring: the recommendation. Dashed: the return bound.
# ```

# %%
frontier_display(summaries[0])

# %%
Markdown(explained[0])

# %% [markdown]
# ## Our HalfCheetah agent
#
# The same search on our HalfCheetah-v5 agent ({numref}`fig-choose-halfcheetah`). Its policy acts
# with the mean of its Gaussian, and the sensitivity pass measures the change of that mean.

# %% [markdown]
# ```{glue:figure} fig-choose-halfcheetah
# :name: fig-choose-halfcheetah
#
# Not in the poster: `rlcomp choose` on our HalfCheetah-v5 policy-gradient agent of training seed
# 0 (the policy network 17-256-256-6 is what is compressed), as in {numref}`fig-choose-lunarlander`.
# ```

# %%
frontier_display(summaries[1])

# %%
Markdown(explained[1])

# %% [markdown]
# ## A Stable-Baselines3 policy
#
# A policy we did not train: a DQN of Stable-Baselines3 on LunarLander-v3
# ({numref}`fig-choose-sb3`), read from SB3's zip without unpickling it (`rlcomp.imports`), and
# searched exactly as our own.

# %% [markdown]
# ```{glue:figure} fig-choose-sb3
# :name: fig-choose-sb3
#
# Not in the poster: `rlcomp choose` on the Stable-Baselines3 DQN policy for LunarLander-v3 (SB3's
# own zip), as in {numref}`fig-choose-lunarlander`.
# ```

# %%
frontier_display(summaries[2])

# %%
Markdown(explained[2])

# %% [markdown]
# ## Against the poster's methods
#
# What does the search gain over taking the best of the poster's methods off the shelf? Chapter
# 06's table gives, per environment and method family, the smallest model whose normalized return
# keeps 95%; among the poster's single global methods (pruning, rank reduction, int8
# quantization), the one with the fewest model bytes is the best a user of the poster could
# pick. The two are not measured alike, which the comparison has to carry:
#
# - Chapter 06's number is the **mean over training seeds** (five agents per environment in the
#   full profile), and the rule is on that mean; the search works on **one policy** (training
#   seed 0 for ours) and its rule is on the **lower end** of the interval over that policy's
#   evaluation episodes, a stricter test at the same bound.
# - The SB3 policy is another agent than chapter 06's: it is set beside chapter 06's LunarLander
#   row, our agents' best, and the factors are each against its own dense policy.
#
# The last column divides the search's factor by chapter 06's: above 1x, the search compresses
# more.

# %%
frontier_path = frontier_csv or BOOK_DATA / FRONTIER_FILE
frontier = read_frontier(frontier_path)
comparison = comparison_table(summaries, frontier)
comparison_display(comparison)

# %%
source = frontier_path.relative_to(ROOT) if frontier_csv is None else frontier_path
Markdown(comparison_markdown(comparison, frontier, str(source)))

# %% [markdown]
# ## Headline numbers
#
# What each search recommends: its spec, model size (and the dense policy's), how many times
# smaller than dense it is, its normalized return with its interval, the episodes the
# recommendation and all candidates played, and whether the ONNX export passed its parity check.

# %%
headline_display(summaries)

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# (hidden from the book) what the regression test checks: the LunarLander recommendations, which
# are the same on every machine (HalfCheetah's returns, and with them its race, are not)
portable(headline_table(summaries))

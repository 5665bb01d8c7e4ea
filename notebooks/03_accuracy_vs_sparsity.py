# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: reprolib,-jupytext.text_representation
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   reprolib:
#     reads:
#     - ledger
#     - tickets_table
#     - drawing_code
#     trains: false
#     writes:
#     - figures:accuracy_vs_sparsity*
# ---

# %% [markdown]
# # 03 · Accuracy vs sparsity: LP vs VP vs SMM
#
# Does a sparser backbone (a lottery ticket) still transfer? For each target, target-task
# test accuracy against the density of the backbone, one line per transfer arm, mean over
# seeds with its 95% t interval as error bars (no bar: one run). Density falls to the right (log scale). Circles are IMP
# tickets; hollow squares and crosses the magnitude and random baselines at the same density.
# Read: a flat line is an arm robust to sparsity; the paper's claim is that LP stays flat
# while visual prompting (VP) falls.

# %% tags=["parameters"]
# None: the chosen study ($REPROLIB_PROFILE, e.g. `make lab PROFILE=imagenet-lite`; else embedded) and
# its profile's values (filled in by setup below); papermill can set any of them.
profile = None
artifacts = None
figures = None

# %%
# %matplotlib inline
from IPython.display import Markdown, display

from reprolib import plots
from reprolib.study.ledger import load_ledger
from reprolib.notebooks.runner import setup

P = setup(profile=profile, artifacts=artifacts, figures=figures)
FIGURES = P.path("figures")
ledger = load_ledger(P.path("artifacts"))
# The headline setting: full data, or the largest n-shot in a study without full-data runs
# (imagenet-lite, smoke-lite); the few-shot section below still shows every n-shot.
headline = plots.headline_shot(ledger)
# Sparse networks the summary compares with dense: IMP tickets, or, for a backbone whose
# tickets are one-shot pruned pretrained weights (no IMP level in the ledger), those.
sparse_kind = plots.common.sparse_kind(ledger)
display(Markdown(f"Headline setting: {'full data' if headline == -1 else f'{headline}-shot (no full-data runs)'}; "
                 f"sparse networks: {sparse_kind}."))

# %% [markdown]
# ## Full training set (or the largest n-shot, see above)

# %%
fig = plots.accuracy_vs_sparsity(ledger, n_shot=headline)
plots.save(fig, FIGURES, "accuracy_vs_sparsity", why="no finished runs in the headline setting")
fig

# %% [markdown]
# ## Each few-shot setting
# The same figure with only n images per class for training (the test set is always full); the
# headline setting's figure is the one above, not drawn again.

# %%
for n in plots.own_shot_settings(ledger):
    fig = plots.accuracy_vs_sparsity(ledger, n_shot=n)
    if plots.save(fig, FIGURES, f"accuracy_vs_sparsity_{n}shot", why=f"no finished {n}-shot runs"):
        display(fig)
if headline > 0:   # a copy of the headline figure under the few-shot name, left by an earlier run, goes
    plots.save(None, FIGURES, f"accuracy_vs_sparsity_{headline}shot", why="it is the headline figure above")

# %% [markdown]
# ## Table: accuracy (%) per ticket, mean and 95% t interval over seeds (full data); n = seeds

# %%
table = plots.interval_pivot(ledger, "accuracy", n_shot=headline)
plots.save_table(table, FIGURES, "accuracy_vs_sparsity")
table

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): mean accuracy (%) per arm, dense vs sparsest level, headline setting.
shots = ledger[ledger["n_shot"] == headline]
imp = shots[(shots["ticket_kind"] == sparse_kind) | (shots["level"] == 0)]
top = int(imp["level"].max())
summary = imp[imp["level"].isin([0, top])].groupby(["arm", "level"])["accuracy"].mean().unstack().mul(100).round(0)
print(summary.to_string())

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
#     - figures:few_shot
# ---

# %% [markdown]
# # 04 · Few-shot: accuracy vs shots per class, per sparsity level
#
# Data sparsity meets model sparsity. Each panel is one target (row) and one transfer arm
# (column); x is the number of training images per class (`full` = the whole training
# set), one line per IMP level (dark = dense, light = sparsest), mean and 95% t interval over seeds (n = seeds).
# Read: lines that fan out at the left mean sparsity hurts most when data is scarce.

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

# %%
fig = plots.few_shot(ledger)
plots.save(fig, FIGURES, "few_shot", why="no finished runs")
fig

# %% [markdown]
# ## Table: accuracy (%) per shots per class, mean and 95% t interval over seeds (IMP tickets); n = seeds

# %%
table = plots.few_shot_pivot(ledger)
plots.save_table(table, FIGURES, "few_shot")
table

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): the shot settings and IMP levels in the ledger.
imp = ledger[ledger["ticket_kind"] == "imp"]
print(sorted(int(n) for n in imp["n_shot"].unique()), sorted(int(lv) for lv in imp["level"].unique()))

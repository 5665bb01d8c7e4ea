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
#     - figures:ood_vs_sparsity
# ---

# %% [markdown]
# # 07 · Out-of-distribution detection vs sparsity
#
# When the transfer runs also score out-of-distribution (OOD) test images, the records
# carry OOD metrics (`ood_*` columns of the ledger). Here: AUROC of telling in-distribution
# from OOD test images apart (0.5 = chance, dashed; 1 = perfect; below 0.5 the scores rank OOD
# images above the target's own) against density, one line per arm, one row of panels per
# target (its OOD sets differ): the target's OOD partner datasets, and uniform noise, each
# scored by the maximum softmax probability and by the negative energy. Without OOD metrics
# in the ledger no figure is made (the line below says so) and the table is empty.

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
headline = plots.headline_shot(ledger)   # full data, or the largest n-shot of a few-shot study

# %%
fig = plots.ood_vs_sparsity(ledger, n_shot=headline)
plots.save(fig, FIGURES, "ood_vs_sparsity", why="no OOD metrics in the ledger's headline runs")
fig

# %%
ood = plots.ood_columns(ledger)
table = plots.summary_table(ledger, metrics=ood) if ood else ledger.head(0)[["target", "arm"]]
plots.save_table(table, FIGURES, "ood_vs_sparsity")
display(Markdown(f"OOD metric columns in the ledger: {', '.join(ood) or 'none'}"))
table

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): number of OOD metric columns.
print(len(ood))

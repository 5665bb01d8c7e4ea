# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Out-of-distribution detection vs sparsity
#
# When the transfer runs also score out-of-distribution (OOD) test images, the records
# carry OOD metrics (`ood_*` columns of the ledger). Here: AUROC of telling in-distribution
# from OOD test images apart (0.5 = chance, 1 = perfect) against density, one line per arm.
# If the ledger holds no OOD metrics yet, the figure says so and the table is empty.

# %% tags=["parameters"]
profile = "embedded"
artifacts = "artifacts/embedded"
figures = "figures/embedded"

# %%
# %matplotlib inline
from IPython.display import Markdown, display

from reprolib import plots
from reprolib.ledger import load_ledger
from reprolib.notebooks import setup

P = setup(profile=profile, artifacts=artifacts, figures=figures)
FIGURES = P.path("figures")
ledger = load_ledger(P.path("artifacts"))

# %%
fig = plots.ood_vs_sparsity(ledger)
plots.save(fig, FIGURES, "ood_vs_sparsity")
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

# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · The paper's claims, tested on our results
#
# The RLT paper (Misra et al. 2023) makes three qualitative claims. Each is turned into a
# precise statement on the ledger (thresholds in `reprolib/claims.py`), with the numbers
# behind it and a verdict: **holds**, **does not hold**, or **inconclusive** (missing data,
# or a result inside the margin). Accuracy differences are in percentage points; means are
# over seeds within a target, then over targets.

# %% tags=["parameters"]
profile = "embedded"
artifacts = "artifacts/embedded"
figures = "figures/embedded"

# %%
import pandas as pd
from IPython.display import Markdown, display

from reprolib import plots
from reprolib.claims import claims_table
from reprolib.ledger import load_ledger
from reprolib.notebooks import setup

P = setup(profile=profile, artifacts=artifacts, figures=figures)
ledger = load_ledger(P.path("artifacts"))

# %%
claims = claims_table(ledger)
plots.save_table(claims, P.path("figures"), "claims")
with pd.option_context("display.max_colwidth", None):
    display(claims)

# %%
for row in claims.itertuples():
    display(Markdown(f"**{row.claim}** — *{row.verdict}*  \nTest: {row.statement}.  \nNumbers: {row.numbers}."))

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): the three verdicts.
print(claims["verdict"].tolist())

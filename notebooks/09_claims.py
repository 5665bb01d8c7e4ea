# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation
#   kernelspec:
#     display_name: Python 3 (ipykernel)
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
#
# Verdicts are given on **tickets with a measured upstream accuracy** only (IMP made here,
# or imported tickets whose ImageNet top-1 was measured); otherwise the verdict is
# **upstream not measured**. Networks pruned once and not retrained are not tickets: the
# same tests on them appear under their own heading below.

# %% tags=["parameters"]
profile = "embedded"
artifacts = "artifacts/embedded"
figures = "figures/embedded"

# %%
import pandas as pd
from IPython.display import Markdown, display

from reprolib import plots
from reprolib.claims import claims_table, oneshot_table
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

# %% [markdown]
# ## One-shot pruned networks (not retrained: not tickets)

# %%
oneshot = oneshot_table(ledger)
if len(oneshot):
    plots.save_table(oneshot, P.path("figures"), "claims_oneshot")
    for row in oneshot.itertuples():
        display(Markdown(f"**{row.claim}** — *{row.verdict}*  \nTest: {row.statement}.  \nNumbers: {row.numbers}."))
else:
    display(Markdown("No one-shot pruned networks in this study."))

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): the three verdicts, and those on one-shot networks (if any).
print(claims["verdict"].tolist(), oneshot["verdict"].tolist())

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
#     - figures:claims*
# ---

# %% [markdown]
# # 09 · The paper's claims, tested on our results
#
# The RLT paper (Misra et al. 2023) makes three qualitative claims. Each is turned into a
# precise statement on the ledger (thresholds in `reprolib/study/claims.py`), with the numbers
# behind it, each with its 95% interval and n, and a verdict read from those intervals:
# **holds** only when the effect's interval lies wholly above the claim's margin, **does not
# hold** when it lies wholly below it, **inconclusive** otherwise (the interval straddles the
# margin, or data are missing). Effects are paired: dense and sparse runs of a cell share each
# seed's few-shot draw, so each effect is computed seed by seed (accuracy in percentage
# points, means over targets within a seed) and its interval is Student's t over the seeds;
# where a cell has one seed it is a bootstrap of the test images, named so, which measures
# test-set noise only. Claim 3 takes the worst of many cells and is corrected by Holm
# (docs/methods.md s.12).
#
# **The test of the tests**: on null ledgers, where the dense and sparse results of each
# paired cell are permuted at random (the network then makes no difference), a claim should
# say "holds" in at most 5% of 200 draws; the rate for this ledger is printed beside each
# verdict.
#
# Verdicts are given on **tickets with a measured upstream accuracy** only (IMP made here,
# or imported tickets whose ImageNet top-1 was measured); otherwise the verdict is
# **upstream not measured**. Networks pruned once and not retrained are not tickets: the
# same tests on them appear under their own heading below.

# %% tags=["parameters"]
# None: the chosen study ($REPROLIB_PROFILE, e.g. `make lab PROFILE=imagenet-lite`; else embedded) and
# its profile's values (filled in by setup below); papermill can set any of them.
profile = None
artifacts = None
figures = None

# %%
import pandas as pd
from IPython.display import Markdown, display

from reprolib import plots
from reprolib.study.claims import NULL_LIMIT, NULL_RATE_COLUMN, claims_table, null_holds_rate, oneshot_table
from reprolib.study.ledger import load_ledger
from reprolib.notebooks.runner import setup

P = setup(profile=profile, artifacts=artifacts, figures=figures)
ledger = load_ledger(P.path("artifacts"))

# %%
claims = claims_table(ledger)
null = null_holds_rate(ledger)
claims[NULL_RATE_COLUMN] = [f"{r.rate:.1%} of {r.draws}" for r in null.itertuples()]
plots.save_table(claims, P.path("figures"), "claims")
with pd.option_context("display.max_colwidth", None):
    display(claims)

# %%
for row in claims.itertuples():
    display(Markdown(f"**{row.claim}** — *{row.verdict}* (holds on null ledgers: {row[5]})  \n"
                     f"{row.statement}.  \nNumbers: {row.numbers}."))

# %% tags=["nbval-check-output"]
# The test of the tests (checked by nbval): per claim, whether it says "holds" on at most 5% of null ledgers.
print(f"null rate within {NULL_LIMIT:.0%}:", null["within_limit"].tolist(), "draws:", int(null["draws"].iloc[0]))

# %% [markdown]
# ## One-shot pruned networks (not retrained: not tickets)

# %%
oneshot = oneshot_table(ledger)
if len(oneshot):
    oneshot_null = null_holds_rate(ledger, table=oneshot_table)
    oneshot[NULL_RATE_COLUMN] = [f"{r.rate:.1%} of {r.draws}" for r in oneshot_null.itertuples()]
    plots.save_table(oneshot, P.path("figures"), "claims_oneshot")
    for row in oneshot.itertuples():
        display(Markdown(f"**{row.claim}** — *{row.verdict}* (holds on null ledgers: {row[5]})  \n"
                         f"{row.statement}.  \nNumbers: {row.numbers}."))
else:
    display(Markdown("No one-shot pruned networks in this study."))

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): the three verdicts, and those on one-shot networks (if any).
print(claims["verdict"].tolist(), oneshot["verdict"].tolist())

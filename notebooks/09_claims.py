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
#     - pilots
#     - drawing_code
#     trains: false
#     writes:
#     - figures:claims*
#     - figures:headline
#     - figures:plan
# ---

# %% [markdown]
# # 09 · The paper's claims, tested on our results
#
# The RLT paper (Misra et al. 2023) makes three qualitative claims. Each is turned into a
# precise statement on the ledger (thresholds in `reprolib/study/claim_tests.py`), with the
# numbers behind it, each with its interval and n, and a verdict read from those intervals:
# **holds** only when every part's 95% interval lies wholly above its margin, **does not
# hold** when a part's interval lies wholly below it (at 97.5% for a claim of two parts:
# Bonferroni, so either part errs at most 2.5% in all), **inconclusive** otherwise (with the
# number of units that would decide), and **not testable here** when the study lacks the runs
# or measurements the claim needs (and why). Runs are nested (ticket replicate, seed): each
# effect is computed per unit, dense and tickets paired within it, and its interval is
# two-level, clustered by ticket replicate, so it covers ticket-to-ticket variation, not only
# the seeds on one ticket (with one replicate: t over the seeds; with one seed: a bootstrap of
# the test images, named so). Claim 3 takes the worst of many cells and is corrected by a max-T
# sign-flip permutation over the replicates (docs/methods.md s.12).
#
# **The test of the tests**: each verdict is judged on 200 null draws whose effect sits exactly
# at the claim's margin (dense and sparse results permuted within each paired cell and ticket
# replicate, then moved to the margin): "holds" must come out in at most 5% of them, and so
# must "does not hold" from the other side; each rate has its Clopper-Pearson upper bound. A
# claim the study cannot test has no rate.
#
# Verdicts are given on **tickets with a measured upstream accuracy** only (IMP made here, or
# imported tickets whose ImageNet top-1 was measured). Networks pruned once and not retrained
# are not tickets: the same tests on them appear under their own heading below. The **power
# plan** at the end says, per claim, what this design can decide and what would decide it.

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
from reprolib.errors import ReprolibError
from reprolib.notebooks.runner import setup
from reprolib.study.claims import claims_of, oneshot_claims
from reprolib.study.headline import headline_table
from reprolib.study.ledger import load_ledger, tickets_table
from reprolib.study.nulls import NULL_LIMIT, null_rates, rate_text
from reprolib.sweep.planner import plan

P = setup(profile=profile, artifacts=artifacts, figures=figures)
ledger = load_ledger(P.path("artifacts"))
NULL_COLUMN = "null at the margin: holds / does not hold (rate, count, 95% upper bound)"


def tested(claims):
    """The claims' table with the null rates at the margin beside each verdict."""
    table = pd.DataFrame([c.result() for c in claims])
    rates = null_rates(claims)
    table[NULL_COLUMN] = [rate_text(row) for row in rates.to_dict("records")]
    return table, rates


def show(table):
    for row in table.itertuples():
        display(Markdown(f"**{row.claim}** — *{row.verdict}*  \n{row.statement}.  \nNumbers: {row.numbers}.  \n"
                         f"Null draws at the margin: {row[-1]}."))


# %%
claims, null = tested(claims_of(ledger))
plots.save_table(claims, P.path("figures"), "claims")
show(claims)

# %% tags=["nbval-check-output"]
# The test of the tests (checked by nbval): per claim, whether both verdicts err at most 5% at the margin
# (None: not testable here, or no null draw possible).
print(f"null at the margin within {NULL_LIMIT:.0%}:", [None if not r["draws"] else bool(r["within_limit"])
                                                       for r in null.to_dict("records")])

# %% [markdown]
# ## One-shot pruned networks (not retrained: not tickets)

# %%
oneshot = oneshot_claims(ledger)
if oneshot:
    oneshot_table, _ = tested(oneshot)
    plots.save_table(oneshot_table, P.path("figures"), "claims_oneshot")
    show(oneshot_table)
else:
    oneshot_table = pd.DataFrame(columns=["verdict"])
    display(Markdown("No one-shot pruned networks in this study."))

# %% [markdown]
# ## Headline numbers
# The numbers a write-up quotes, in one generated table (`headline.md` / `.csv`): cell means with
# their intervals, the paired differences dense vs the sparsest ticket (read a difference from
# its paired interval, not from two overlapping ones), each ticket's upstream accuracy (one
# run) and the verdicts.

# %%
tickets = tickets_table(P.path("artifacts"))
if tickets.empty and (P.path("artifacts") / "tickets.csv").is_file():   # a checkout ships the table, not the tickets
    tickets = pd.read_csv(P.path("artifacts") / "tickets.csv")
headline = headline_table(ledger, tickets, claims if oneshot_table.empty else pd.concat([claims, oneshot_table]))
plots.save_table(headline, P.path("figures"), "headline")
display(Markdown(plots.to_markdown(headline[headline["quantity"] != "value"])))

# %% [markdown]
# ## Power plan: what this design decides, and what would
# Per claim part: the pilot's standard deviations per unit (seed to seed, ticket to ticket;
# `python -m reprolib plan --profile P` prints the same table), the design now (ticket
# replicates x seeds) with its half-width and the smallest effect beyond the margin it detects
# with 80% power, and the cheapest design that reaches the claim's target half-width, priced
# in CPU-minutes (offline) or GPU-hours (GPU profiles).

# %%
try:
    power = plan(P)
    plots.save_table(power, P.path("figures"), "plan")
    display(Markdown(plots.to_markdown(power)))
except ReprolibError as err:   # a pilot that cannot say (one replicate, missing cells): the one line
    display(Markdown(f"Power plan: {err}"))

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): the three verdicts, and those on one-shot networks (if any).
print(claims["verdict"].tolist(), oneshot_table["verdict"].tolist())

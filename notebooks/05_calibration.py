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
#     - figures:calibration_vs_sparsity
#     - figures:reliability_*
#     - figures:legacy_vs_real_ece
#     - figures:ece_vs_sparsity
#     - figures:calibration_summary
# ---

# %% [markdown]
# # 05 · Calibration: ECE, MCE, NLL, Brier vs sparsity
#
# A model is calibrated when its confidence matches its accuracy. ECE (Guo et al. 2017,
# 15 equal-width bins on the top-label confidence, pooled over the test set) is the mean
# gap, MCE the largest bin gap, NLL and Brier are proper scoring rules. Adaptive ECE uses 15
# bins of equal counts instead of equal widths, and classwise ECE (Kull et al. 2019) bins every
# class's probability, not only the top one (docs/methods.md s.9). Lower is better for all six.
# The metrics come from the metric registry (reprolib.scores.registry); a ledger made before a
# metric was registered shows it once `python -m reprolib ledger --recompute-metrics` filled it in.
# Lines: mean and 95% t interval over seeds (n = seeds), density falling to the right, LP and VP.

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
from reprolib.transfer.registry import has_role

P = setup(profile=profile, artifacts=artifacts, figures=figures)
FIGURES = P.path("figures")
ledger = load_ledger(P.path("artifacts"))
headline = plots.headline_shot(ledger)   # full data, or the largest n-shot of a few-shot study

# %%
calibration_arms = [a for a in ledger["arm"].unique() if has_role(a)]   # LP's and VP's arms
fig = plots.calibration_vs_sparsity(ledger, n_shot=headline, arms=calibration_arms)
plots.save(fig, FIGURES, "calibration_vs_sparsity", why="no LP or VP runs in the headline setting")
fig

# %% [markdown]
# ## Reliability diagrams: dense vs the sparsest IMP ticket
# Each diagram follows Guo et al. (2017): blue bars are the accuracy of the test images whose
# confidence falls in each bin; the hatched bar spans from that accuracy to the images' mean
# confidence, red above the bar (over-confident: confidence above accuracy) and yellow inside
# it (under-confident); the dashed diagonal is perfect calibration. The grey histogram below
# is the share of test images per bin, so a large gap over an almost empty bin counts little
# in the ECE. Dense and ticket share both axes; the legend under the pair names every element.
# One pair per target and arm (first seed; full data, or the largest n-shot of a few-shot study).
# The sparse network is the sparsest IMP ticket, or, for a pretrained backbone pruned once
# (imagenet-lite), its sparsest one-shot network.

# %%
for target in sorted(ledger["target"].unique()):
    for arm in sorted(calibration_arms):
        fig = plots.reliability_pair(ledger, target, arm, n_shot=headline)
        if plots.save(fig, FIGURES, f"reliability_{target}_{arm.replace('/', '_')}", why=f"no {target} {arm} runs"):
            display(fig)

# %% [markdown]
# ## The public code's "ECE" beside the real one
# RLT's logged "ECE" is not a calibration error: it feeds **raw logits** (not
# probabilities) to a 15-bin ECE, once per test batch, and divides the sum by the number of
# test images. It therefore grows with the logit scale and shrinks with the test batch
# size (LP and VP used different batch sizes), so it can order arms and tickets differently
# from the real ECE. Left: every run, proper ECE (x) vs legacy value (y), log scales; a
# calibration measure would follow the diagonal. Right: the means per arm.

# %%
fig = plots.legacy_vs_real_ece(ledger)
plots.save(fig, FIGURES, "legacy_vs_real_ece", why="no runs with both values")
fig

# %% [markdown]
# ## Table: ECE per ticket, mean and 95% t interval over seeds (full data); n = seeds

# %%
table = plots.interval_pivot(ledger, "ece", n_shot=headline, digits=3)
plots.save_table(table, FIGURES, "ece_vs_sparsity")
plots.save_table(plots.summary_table(ledger, metrics=plots.shown_metrics(ledger, "calibration_table")),
                 FIGURES, "calibration_summary")
table

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): mean ECE per arm, dense vs IMP tickets, rounded to 2 decimals.
imp = ledger[ledger["ticket_kind"] == "imp"]
print(imp.assign(dense=imp["level"] == 0).groupby(["arm", "dense"])["ece"].mean().unstack().round(2).to_string())

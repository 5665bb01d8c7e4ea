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
#     - figures:smm_vs_prompts
# ---

# %% [markdown]
# # 06 · SMM vs padding and watermark prompts, dense and sparse
#
# Sample-specific multi-channel masks (SMM, Cai et al. 2024) against the prompts it was
# compared with: `pad` (the ILM-VP padding frame), and the `narrow` / `medium` / `full`
# watermark prompts (a learned delta added on a frame of width 28 / 56 px at 224, or
# everywhere). All use the ILM label map. Bars: mean and 95% t interval over seeds (n = seeds), for the dense
# backbone and the sparsest IMP ticket; the profile's grid decides which prompts exist.

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
fig = plots.smm_vs_prompts(ledger, n_shot=headline)
plots.save(fig, FIGURES, "smm_vs_prompts", why="no padding, watermark or SMM runs in the headline setting")
fig

# %%
from reprolib.plots.accuracy import SMM_PROMPTS

prompt_rows = ledger[ledger["arm"].isin(list(SMM_PROMPTS))]
table = plots.interval_pivot(prompt_rows, "accuracy", n_shot=headline)
plots.save_table(table, FIGURES, "smm_vs_prompts")
table

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): which prompt arms the comparison covers.
print(sorted(set(prompt_rows["arm"])))

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
#     - drawing_code
#     trains: true
#     writes:
#     - reprogrammer_runs
#     - figures:reprogrammer
# ---

# %% [markdown]
# # 08 · Reprogrammer: text-image encoders, ID accuracy and OOD
#
# Reprogrammer (Geng & Chen 2024) reprograms a text-image encoder: a learned frame on the
# image side, trained token and position embeddings on the text side, a symmetric focal
# contrastive loss; "Residual Reprogrammer" mixes the features with the frozen zero-shot
# encoder at inference. The study function trains and evaluates it for the profile and
# returns one record per run; the table gives in-distribution accuracy, covariate-shift
# accuracy and OOD detection (AUROC, FPR at 95% TPR) per variant.
#
# A study whose results came with the checkout (the embedded and imagenet-lite studies of a
# fresh clone: their records, without the logits behind them) is reported from those records
# unless `retrain = True`: then the study trains here (a few minutes of CPU).

# %% tags=["parameters"]
# None: the chosen study ($REPROLIB_PROFILE, e.g. `make lab PROFILE=imagenet-lite`; else embedded) and
# its profile's values (filled in by setup below); papermill can set any of them.
profile = None
seeds = None
device = None
artifacts = None
figures = None
retrain = False  # True: train the study here even when its records shipped with the checkout

# %%
# %matplotlib inline
from IPython.display import Markdown, display

from reprolib import plots
from reprolib.notebooks.plan import shipped_results
from reprolib.notebooks.runner import setup

P = setup(profile=profile, seeds=seeds, device=device, artifacts=artifacts, figures=figures)
FIGURES = P.path("figures")
try:
    from reprolib.reprogrammer import reprogrammer_table, run_reprogrammer_study, shipped_reprogrammer_study
except ImportError as err:   # the module is optional in a partial checkout; say so plainly
    run_reprogrammer_study = None
    display(Markdown(f"**Skipped:** `reprolib.reprogrammer` does not provide the study functions here ({err})."))

# %%
# Which encoder this study reprograms: its own (the profile's `reprogrammer.encoder`), never the
# profile's classifier backbone, which has no text side (e.g. imagenet-lite's EfficientNet-Lite0).
if run_reprogrammer_study is not None:
    from reprolib.reprogrammer.recipe import recipe_for

    encoder = recipe_for(P).encoder
    display(Markdown(f"Encoder: `{encoder}`" + (" (the Fashion-MNIST stand-in for CLIP, trained here)"
                                                if encoder == "embedded" else "")
                     + f"; the profile's backbone `{P.backbone}` is not used by this notebook."))

# %%
if run_reprogrammer_study is not None:
    if shipped_results(P) and not retrain:   # the checkout's records stand: nothing trains, nothing is rewritten
        records = shipped_reprogrammer_study(P)
        print(f"the shipped Reprogrammer records of {P.profile}: {len(records)} (retrain = True trains them here)")
    else:
        records = run_reprogrammer_study(P)
    table = reprogrammer_table(records)
    plots.save_table(table, FIGURES, "reprogrammer")
    display(table)

# %% [markdown]
# Per method (zero-shot encoder, linear probe, fine-tuning, Reprogrammer, and the residual
# variant at each mixing weight a): in-distribution accuracy, accuracy on covariate-shifted
# test images, and OOD detection (AUROC higher and FPR95 lower are better), one colour per target.

# %%
if run_reprogrammer_study is not None:
    fig = plots.reprogrammer_bars(table)
    if plots.save(fig, FIGURES, "reprogrammer", why="no Reprogrammer records"):
        display(fig)

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): how many reprogrammer runs were tabulated.
print(0 if run_reprogrammer_study is None else len(records))

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
#     - run_records
#     - drawing_code
#     trains: false
#     writes:
#     - figures:explorer_compare
# ---

# %% [markdown]
# # 11 · Sparsity explorer
#
# Compare any two networks of a study: the dense model, IMP tickets, the magnitude and random
# baselines, one-shot pruned networks of a pretrained backbone, imported tickets. Pick the
# study, target, arm (LP, or a prompt with its label map) and shots per class; network A
# (dense by default) and network B (the slider: every network of the study, dense first,
# sparsest last). The figure shows accuracy and ECE with every seed as a point and the mean
# with its 95% t interval, beside both reliability diagrams (pooled over seeds); the line
# above it gives the numbers. "One run of B" adds that run's learned prompt and label map, for
# the seed picked beside it (ringed in the figure).
#
# It reads only the ledger: the shipped results of the offline studies are enough (nothing
# trains). Run all cells (JupyterLab: `make lab`). The study picker below chooses the study
# (and a rerun of this notebook opens the one picked); `make lab PROFILE=imagenet-lite` opens
# every notebook on that study. A study without results says in one line what to run.

# %% tags=["parameters"]
# None: the chosen study ($REPROLIB_PROFILE, else embedded) and its profile's values (setup below).
profile = None
source = None
artifacts = None
figures = None
live_widgets = True  # `reprolib notebooks` passes False: headless runs draw the static figures only

# %%
# %matplotlib inline
from IPython.display import display

from reprolib import plots
from reprolib.errors import ReprolibError
from reprolib.notebooks.runner import setup
from reprolib.plots.explorer import DENSE, compare_summary, explorer_choices
from reprolib.plots.explorer_figure import compare_panel
from reprolib.plots.explorer_run import run_panel
from reprolib.plots.explorer_widgets import explorer_widgets, open_study, sparsest

P = setup(profile=profile, source=source, artifacts=artifacts, figures=figures)
study = open_study(P)
print(study.message)
choices = explorer_choices(study.ledger) if study.ledger is not None else None

# %% [markdown]
# ## Interactive
# Combinations the sweep did not run show a one-line message instead of a figure.

# %% tags=["nbval-ignore-output"]
if live_widgets:
    display(explorer_widgets(study))
else:
    print("(interactive widgets: open notebooks/11_explorer.py in JupyterLab and run it)")

# %% [markdown]
# ## Drawn statically: dense beside the sparsest network, first target and arm, most shots
# The comparison is saved (`explorer_compare`); the cell after it shows network B's first seed as
# "one run of B" does: its learned prompt and label map. That one is shown, not saved: a study's
# results may be shipped without the runs' learned prompts (the panel then says so), and a saved
# figure must not depend on what a clone lacks.

# %%
if choices:
    static = dict(target=choices["target"][0], arm=choices["arm"][0], n_shot=choices["n_shot"][-1],
                  network_a=DENSE, network_b=sparsest(choices))
    try:
        runs = study.index.runs(static["target"], static["arm"], static["n_shot"], static["network_b"])
        compared = compare_panel(study.index, **static, seed=runs.seeds[0])
    except ReprolibError as err:   # that cell was not run in this study: say so in one line
        runs = compared = None
        print(err)
    plots.save(compared, P.path("figures"), "explorer_compare", why="no run in the default cell")
    display(compared) if compared is not None else None

# %%
if choices and runs is not None:
    row = study.ledger.loc[study.ledger["id"] == runs.ids[0]].iloc[0]
    display(run_panel(row, P.path("artifacts"), P.source))

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): the explorer's choices and the static comparison's numbers.
print(choices)
print(compare_summary(study.index, **static) if choices else study.message)

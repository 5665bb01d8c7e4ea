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
#     reads: []
#     trains: true
#     writes:
#     - tickets
#     - figures:upstream_per_level
#     - figures:tickets
# ---

# %% [markdown]
# # 01 · Upstream model and lottery tickets
#
# The study starts from one upstream network and its sparse versions. This notebook makes
# (or reuses) the tickets of the profile with `python -m reprolib tickets`: iterative
# magnitude pruning (IMP, 20% of the remaining weights per level, rewound and retrained),
# and the two baselines at the same density, one-shot global magnitude pruning and random
# pruning. It then shows, per pruning level, the upstream test accuracy and the density.
#
# A study whose results came with the checkout (its tables, without the tickets: the embedded
# and imagenet-lite studies of a fresh clone) is shown from its shipped `tickets.csv` unless
# `retrain = True`: then the tickets are made here (about 40 minutes of CPU for the embedded
# study's eight IMP replicates).

# %% tags=["parameters"]
# None: the chosen study ($REPROLIB_PROFILE, e.g. `make lab PROFILE=imagenet-lite`; else embedded) and
# its profile's values (filled in by setup below); papermill can set any of them.
profile = None
levels = None
baselines = None
baseline_level = None
artifacts = None
figures = None
retrain = False  # True: make the tickets here even when the study's results shipped with the checkout

# %%
# %matplotlib inline
from IPython.display import Markdown, display

import pandas as pd

from reprolib import paths, plots
from reprolib.cli import main as reprolib_cli
from reprolib.study.ledger import tickets_table
from reprolib.notebooks.plan import shipped_results
from reprolib.notebooks.runner import setup
from reprolib.progress import live_frontend

P = setup(profile=profile, levels=levels, baselines=baselines, baseline_level=baseline_level,
          artifacts=artifacts, figures=figures)
FIGURES = P.path("figures")

# %% [markdown]
# ## Make the tickets
# Finished levels are kept on disk (`<artifacts>/tickets/<kind>/level_XX/`) and skipped,
# so rerunning this cell is cheap. The command reads the profile's YAML (its upstream and
# tickets recipes). In JupyterLab the cell shows progress bars (levels, training steps);
# `make figures` reports them on its terminal instead, keeping the saved notebook stable.

# %%
shipped = shipped_results(P) and not retrain
if shipped:   # the checkout's tickets table stands: nothing trains
    print(f"the shipped tickets table of {P.profile}: {paths.tickets_table_file(P.path('artifacts'))} "
          "(retrain = True makes the tickets here)")
else:
    top = max([*P.levels, P.baseline_level])
    # IMP needs every level up to the top one; the baselines are made only where the sweep
    # compares them (baseline_level), which keeps the embedded profile inside its time budget.
    # Every ticket replicate of the profile (`replicates`; another IMP run each, made in parallel).
    status = reprolib_cli(["tickets", "--profile", P.profile, "--levels", f"0-{top}",
                           "--kinds", ",".join(["imp", *P.baselines]),
                           "--baseline-levels", str(P.baseline_level), *([] if live_frontend() else ["--quiet"])])
    assert status == 0, f"the tickets command failed with status {status}"

# %% [markdown]
# ## Upstream accuracy and density per level
# Left: test accuracy of each pruned network on the upstream task (the dense model is IMP
# level 0). Right: density, the share of prunable weights kept, on a log scale; IMP follows
# the dotted 0.8^level line by construction, and the baselines sit at the same density.
# A ticket that keeps its upstream accuracy while losing most weights is what the lottery
# ticket hypothesis promises; the later notebooks ask whether it also *transfers* as well.

# %%
tickets = (pd.read_csv(paths.tickets_table_file(P.path("artifacts"))) if shipped
           else tickets_table(P.path("artifacts")))
fig = plots.upstream_per_level(tickets)
plots.save(fig, FIGURES, "upstream_per_level", why="no tickets")
fig

# %%
table = tickets.drop(columns=["path"]).assign(
    density=lambda t: (100 * t["density"]).round(2), density_rlt=lambda t: (100 * t["density_rlt"]).round(2),
    upstream_accuracy=lambda t: (100 * t["upstream_accuracy"]).round(2), runs="one run")
table.attrs["footnote"] = ("one run: each row is one network, trained once (one IMP replicate), so its numbers have "
                           "no interval; density and upstream accuracy in %")
plots.save_table(table, FIGURES, "tickets")
display(Markdown("Density and upstream accuracy in %, each one run; `density_rlt` counts conv weights without the stem conv and fc, as RLT reports it."))
table

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): which tickets exist.
print(sorted(zip(tickets["ticket_kind"], tickets["level"].astype(int))))

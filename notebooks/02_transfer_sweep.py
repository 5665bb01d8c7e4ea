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
#     - tickets
#     - ledger_code
#     trains: true
#     writes:
#     - run_records
#     - ledger
#     - tickets_table
# ---

# %% [markdown]
# # 02 · The transfer sweep and the ledger
#
# Every transfer run of the study is one configuration: target x arm (`lp`, or a prompt
# method with its label map such as `vp/ilm`) x network (dense, IMP levels, baselines) x
# shots per class x seed. The sweep runs them one by one; each run writes one JSON record
# atomically, named by the hash of its configuration, and a run whose record exists is
# skipped. An interrupted sweep therefore resumes where it stopped. On a Slurm cluster,
# `run_sweep(configs, executor="submitit")` submits the same runs as a job array.
#
# All records are then flattened into the **ledger** (`<artifacts>/ledger.csv`), the one
# table every later notebook reads.
#
# GPU profiles (`trains_in_notebooks: false`: paper, paper-headline) never train here: their
# grid runs with `make sweep PROFILE=...` on every GPU of a node or on Slurm, and this notebook
# reports which runs are finished, failed or missing, cell by cell, with the command that
# completes them. A study whose results came with the checkout (its ledger, without the run
# records: the embedded and imagenet-lite studies of a fresh clone) is reported the same way,
# from its shipped ledger, unless `retrain = True`: then the grid trains here (about an hour of
# CPU for the embedded study, once its tickets exist: notebook 01).

# %% tags=["parameters"]
# None: the chosen study ($REPROLIB_PROFILE, e.g. `make lab PROFILE=imagenet-lite`; else embedded) and
# its profile's values (filled in by setup below); papermill can set any of them.
profile = None
targets = None
methods = None
levels = None
baselines = None
baseline_level = None
n_shots = None
seeds = None
full_data_seeds = None
device = None
workers = None  # sweep processes (0: one per CPU core on CPU, one on GPU)
artifacts = None
figures = None
retrain = False  # True: train the grid here even when the study's results shipped with the checkout

# %%
from collections import Counter

from reprolib import paths
from reprolib.study.ledger import failed_runs, finished_runs, load_ledger, update_ledger
from reprolib.notebooks.plan import shipped_results
from reprolib.notebooks.runner import setup
from reprolib.progress import live_frontend
from reprolib.sweep.lock import sweep_lock
from reprolib.sweep.runner import build_grid, resolve_workers, run_sweep
from reprolib.sweep.status import current_ledger, grid_status, summary_line

P = setup(profile=profile, targets=targets, methods=methods, levels=levels, baselines=baselines,
          baseline_level=baseline_level, n_shots=n_shots, seeds=seeds, full_data_seeds=full_data_seeds,
          device=device, workers=workers, artifacts=artifacts, figures=figures)

# %%
configs = build_grid(P)
print(f"{len(configs)} runs in the grid; per arm: {dict(Counter(c.method if not c.label_map else f'{c.method}/{c.label_map}' for c in configs))}")

# %% [markdown]
# The long cell: in JupyterLab it shows a progress bar (runs done, the current run, time left);
# `make figures` reports the same on its terminal and keeps it out of the saved notebook.

# %%
shipped = shipped_results(P) and not retrain
if shipped:   # the checkout's results stand: nothing trains, nothing is rewritten
    records, ledger = [], load_ledger(P.path("artifacts"), failed=True)
    print(f"the shipped results of {P.profile}: {len(ledger)} runs in {paths.ledger_file(P.path('artifacts'))} "
          "(retrain = True trains the grid here)")
elif P.trains_in_notebooks:   # one writer at a time on the study's runs (reprolib.sweep.lock)
    with sweep_lock(paths.runs_dir(P.path("artifacts")), what="notebook 02"):
        records = run_sweep(configs, verbose=live_frontend(), workers=resolve_workers(P.workers, P.device)).records
        # retrain: the new ledger replaces the shipped one, whose runs were retrained here
        ledger = update_ledger(P.path("artifacts"), ship_scores=P.ship_scores, study=P.profile, replace=retrain)
else:   # the grid runs outside the notebooks (`make sweep`); the status below says how far it is
    records, ledger = [], current_ledger(P.path("artifacts"), ship_scores=P.ship_scores, study=P.profile)
print(f"ledger: {len(ledger)} runs, {ledger['wall_time_s'].sum() / 60:.1f} min of training recorded")

# %% [markdown]
# Where the grid stands, per target x arm x network: runs finished, failed and missing, and the
# `sweep --only` slice that completes a cell (the sweep skips what is finished).

# %%
status = grid_status(configs, paths.runs_dir(P.path("artifacts")), P, ledger if shipped else None)
print(summary_line(status, P))
status[status["finished"] < status["runs"]]

# %% [markdown]
# A run that raised does not stop the sweep: it leaves a failure record (`<id>.failed.json`,
# its traceback beside it) and appears in the ledger with `status` "failed" and its error;
# tables and figures take numbers from finished runs only, and a rerun retries it.

# %%
failed = failed_runs(ledger)
print(f"{len(failed)} failed runs" + (":" if len(failed) else ""))
failed

# %% [markdown]
# The ledger's first rows (accuracy and ECE are fractions; `density` is the share of
# prunable weights kept; `n_shot` -1 means the full training set):

# %%
ledger[["target", "arm", "ticket_kind", "level", "density", "n_shot", "seed", "accuracy", "ece"]].head(10)

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): every configuration has exactly one record (the shipped ledger: one row).
grid_ids = set(finished_runs(ledger)["id"]) if shipped else {r["id"] for r in records}
print(len(configs), len(grid_ids), set(ledger["id"]) >= grid_ids)

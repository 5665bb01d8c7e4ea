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
#     - figures:published_*
# ---

# %% [markdown]
# # 10 · Published numbers beside ours
#
# The ILM-VP paper's main table (CVPR 2023) and the SMM paper's Table 1 (ICML 2024), as
# published (accuracy %, mean ± std over 3 runs), with their source lines. With the paper
# profile (ImageNet ResNets, the paper datasets) our dense full-data accuracy is placed
# beside each published number with the difference in points. Check the split and the
# epochs before reading a difference as a failure to reproduce: the papers used CoOp
# splits and 200 epochs, the RLT protocol 100 epochs and torchvision's official splits.

# %% tags=["parameters"]
# None: the chosen study ($REPROLIB_PROFILE, e.g. `make lab PROFILE=imagenet-lite`; else embedded) and
# its profile's values (filled in by setup below); papermill can set any of them.
profile = None
artifacts = None
figures = None

# %%
from IPython.display import Markdown, display

from reprolib import plots
from reprolib.config import load_profile
from reprolib.study.ledger import load_ledger
from reprolib.notebooks.runner import setup
from reprolib.notebooks.studies import results_command
from reprolib.study.published import compare, load_published, names, published_source

P = setup(profile=profile, artifacts=artifacts, figures=figures)
ledger = load_ledger(P.path("artifacts"))

# %%
comparisons = {}
for name in names():
    display(Markdown(f"### {name}\n" + "  \n".join(published_source(name))))
    display(load_published(name))
    comparisons[name] = compare(ledger, name)

# %%
if any(len(t) for t in comparisons.values()):
    for name, table in comparisons.items():
        plots.save_table(table, P.path("figures"), f"published_{name}")
        display(Markdown(f"### Ours beside {name} (difference = ours - published, points)"))
        display(table)
else:
    display(Markdown(f"**No comparable runs** in the `{P.profile}` profile: its backbone ({P.backbone}) and "
                     f"targets ({', '.join(P.targets)}) do not appear in the published tables. "
                     f"The paper profile makes them: run {results_command(load_profile('paper'))}."))

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): rows compared per published table.
print({name: len(table) for name, table in comparisons.items()})

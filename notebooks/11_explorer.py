# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 11 · Sparsity explorer
#
# Pick a target, an arm, a sparsity level and a number of shots per class: the panel shows
# that run's accuracy and calibration numbers, its reliability diagram, the learned prompt
# as an image (padding prompt: sigmoid(theta) on the frame; watermark / SMM: the additive
# delta) and the label map (which source class each target class reads). Everything comes
# from the ledger and the run's saved `.npz`, so moving a slider is instant.
#
# The first cell draws one static panel (saved as a figure); the interactive cell after it
# needs a live kernel (JupyterLab).

# %% tags=["parameters"]
profile = "embedded"
source = "fashion_mnist"
artifacts = "artifacts/embedded"
figures = "figures/embedded"

# %%
# %matplotlib inline
from reprolib import plots
from reprolib.ledger import load_ledger
from reprolib.notebooks import setup

P = setup(profile=profile, source=source, artifacts=artifacts, figures=figures)
ledger = load_ledger(P.path("artifacts"))
imp = ledger[ledger["ticket_kind"] == "imp"]
choices = {
    "target": sorted(imp["target"].unique()),
    "arm": sorted(imp["arm"].unique(), key=lambda a: (a != "vp/ilm", a)),
    "level": sorted(int(v) for v in imp["level"].unique()),
    "n_shot": sorted((int(v) for v in imp["n_shot"].unique()), key=lambda n: (n < 0, n)),
}

# %% [markdown]
# ## One run, drawn statically (the sparsest IMP ticket, full data)

# %%
static = plots.explorer_panel(ledger, P.path("artifacts"), choices["target"][0], choices["arm"][0],
                              choices["level"][-1], choices["n_shot"][-1], source=P.source)
plots.save(static, P.path("figures"), "explorer_example")
static

# %% [markdown]
# ## Interactive
# Combinations the sweep did not run show a one-line message instead of a panel.

# %% tags=["nbval-ignore-output"]
import ipywidgets as widgets
from IPython.display import display

from reprolib.errors import ReprolibError


def show(target: str, arm: str, level: int, n_shot: int) -> None:
    try:
        display(plots.explorer_panel(ledger, P.path("artifacts"), target, arm, level, n_shot, source=P.source))
    except ReprolibError as err:
        print(err)


explorer = widgets.interact(
    show,
    target=widgets.Dropdown(options=choices["target"]),
    arm=widgets.Dropdown(options=choices["arm"]),
    level=widgets.SelectionSlider(options=choices["level"], value=choices["level"][-1], continuous_update=False,
                                  description="IMP level"),
    n_shot=widgets.SelectionSlider(options=[(("full" if n < 0 else str(n)), n) for n in choices["n_shot"]],
                                   value=choices["n_shot"][-1], continuous_update=False, description="shots"),
)

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): the explorer's choices.
print(choices)

# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 11 · Sparsity explorer
#
# Pick a profile, a target, an arm, a sparsity level and a number of shots per class. The
# comparison shows the chosen ticket beside the dense network (same target, arm, shots and
# seed) on the same reliability axes, and accuracy and ECE across every level with the
# chosen one ringed; the line under the widgets gives the numbers. The single-run panel below
# it adds the learned prompt (padding prompt: sigmoid(theta) on the frame; watermark / SMM:
# the additive delta) and the label map. Everything comes from the ledger and the run's
# saved `.npz`, so moving a slider is instant.
#
# The first cells draw static figures (saved); the interactive cell needs a live kernel
# (JupyterLab: `make lab`).

# %% tags=["parameters"]
profile = "embedded"
source = "fashion_mnist"
artifacts = "artifacts/embedded"
figures = "figures/embedded"
live_widgets = True  # `reprolib notebooks` passes False: headless runs draw the static figures only

# %%
# %matplotlib inline
from reprolib import paths, plots
from reprolib.config import PROFILE_DIR, load_profile
from reprolib.ledger import load_ledger
from reprolib.notebooks import setup
from reprolib.plots.explorer import compare_panel, compare_summary

P = setup(profile=profile, source=source, artifacts=artifacts, figures=figures)


def explorer_choices(ledger):
    """Widget options: the targets, arms, IMP levels and shots this ledger holds."""
    imp = ledger[ledger["ticket_kind"] == "imp"]
    return {
        "target": sorted(imp["target"].unique()),
        "arm": sorted(imp["arm"].unique(), key=lambda a: (a != "vp/ilm", a)),
        "level": sorted(int(v) for v in imp["level"].unique()),
        "n_shot": sorted((int(v) for v in imp["n_shot"].unique()), key=lambda n: (n < 0, n)),
    }


ledger = load_ledger(P.path("artifacts"))
choices = explorer_choices(ledger)
# Profiles whose sweep has a ledger in this workbook (the profile dropdown's options).
profiles = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")
                  if paths.ledger_file(load_profile(p.stem).path("artifacts")).exists())

# %% [markdown]
# ## The sparsest IMP ticket beside the dense network (full data), drawn statically

# %%
static = compare_panel(ledger, choices["target"][0], choices["arm"][0], choices["level"][-1], choices["n_shot"][-1])
plots.save(static, P.path("figures"), "explorer_compare")
static

# %%
single = plots.explorer_panel(ledger, P.path("artifacts"), choices["target"][0], choices["arm"][0],
                              choices["level"][-1], choices["n_shot"][-1], source=P.source)
plots.save(single, P.path("figures"), "explorer_example")
single

# %% [markdown]
# ## Interactive
# Combinations the sweep did not run show a one-line message instead of a figure. Changing
# the profile reloads its ledger and the other widgets' options.

# %% tags=["nbval-ignore-output"]
import ipywidgets as widgets
from IPython.display import display

from reprolib.errors import ReprolibError


def explorer_widgets(ledger, P):
    """The explorer's controls, each wired to the redraw (the level slider too), in one box."""
    controls = {
        "profile": widgets.Dropdown(options=profiles or [P.profile], value=P.profile, description="profile"),
        "target": widgets.Dropdown(options=choices["target"], description="target"),
        "arm": widgets.Dropdown(options=choices["arm"], description="arm"),
        "level": widgets.SelectionSlider(options=choices["level"], value=choices["level"][-1],
                                         continuous_update=False, description="IMP level"),
        "n_shot": widgets.SelectionSlider(options=[(("full" if n < 0 else str(n)), n) for n in choices["n_shot"]],
                                          value=choices["n_shot"][-1], continuous_update=False, description="shots"),
    }
    numbers = widgets.Label()
    output = widgets.Output()
    numbers.add_class("reprolib-numbers")   # stable handles for the browser test
    output.add_class("reprolib-figures")
    state = {"ledger": ledger, "profile": P}

    def redraw(_=None) -> None:
        """Draw the comparison and the single-run panel for the widgets' current values."""
        values = {k: controls[k].value for k in ("target", "arm", "level", "n_shot")}
        output.clear_output(wait=True)
        with output:
            try:
                numbers.value = compare_summary(state["ledger"], **values)
                display(compare_panel(state["ledger"], **values))
                display(plots.explorer_panel(state["ledger"], state["profile"].path("artifacts"), **values,
                                             source=state["profile"].source))
            except ReprolibError as err:
                numbers.value = str(err)

    def change_profile(change) -> None:
        """Load the chosen profile's ledger and offer its targets, arms, levels and shots."""
        state["profile"] = load_profile(change["new"])
        state["ledger"] = load_ledger(state["profile"].path("artifacts"))
        options = explorer_choices(state["ledger"])
        # Each assignment may redraw once on its own; the last call below draws the final state.
        for key in ("target", "arm", "level"):
            controls[key].options = options[key]
        controls["level"].value = options["level"][-1]
        controls["n_shot"].options = [(("full" if n < 0 else str(n)), n) for n in options["n_shot"]]
        redraw()

    controls["profile"].observe(change_profile, names="value")
    for key in ("target", "arm", "level", "n_shot"):
        controls[key].observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox(list(controls.values())[:3]), widgets.HBox(list(controls.values())[3:]),
                         numbers, output])


if live_widgets:
    display(explorer_widgets(ledger, P))
else:
    print("(interactive widgets: open notebooks/11_explorer.py in JupyterLab and run it)")

# %% tags=["nbval-check-output"]
# Summary (checked by nbval): the explorer's choices and the static comparison's numbers.
print(choices)
print(compare_summary(ledger, choices["target"][0], choices["arm"][0], choices["level"][-1], choices["n_shot"][-1]))

"""Which study a notebook opens, and the command that makes a study's results.

A notebook's parameters cell says `profile = None`: the study named by $REPROLIB_PROFILE, else
`DEFAULT_PROFILE`. `make lab PROFILE=imagenet-lite` sets the variable for every notebook of that
JupyterLab, and the explorer's study picker sets it in its kernel, so a study is chosen without
editing a cell: JupyterLab's autosave would write an edited cell into the tracked source.
papermill (`reprolib notebooks`) always passes the profile by name.

`results_command(profile)` is what to run for a study without results: the profile says where
it trains (`Profile.trains_in_notebooks`): in the notebooks (`make figures`, offline CPU
studies) or on GPUs and Slurm (`make sweep`, then `make figures` to draw).
"""

from __future__ import annotations

import os

from reprolib.config import Profile

PROFILE_ENV = "REPROLIB_PROFILE"
DEFAULT_PROFILE = "embedded"


def chosen_profile() -> str:
    """The study a notebook opens when its `profile` parameter is None."""
    return os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE


def results_command(profile: Profile) -> str:
    """'make figures PROFILE=x (it trains this study)' or 'make sweep PROFILE=x ..., then make figures ...'."""
    name = profile.profile
    if profile.trains_in_notebooks:
        return f"`make figures PROFILE={name}` (it trains this study)"
    return (f"`make sweep PROFILE={name}` (its grid, on every visible GPU or with EXECUTOR=slurm), "
            f"then `make figures PROFILE={name}`")

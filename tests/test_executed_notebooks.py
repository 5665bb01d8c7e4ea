"""Committed executed notebooks open in JupyterLab unmodified: nothing Lab would rewrite on opening.

JupyterLab marks a notebook modified (and autosave then rewrites it) when, after loading, it
sets metadata to values that differ from the file's: the running kernel's kernelspec and
language_info, or a newer nbformat minor version. Saving goes through nbformat's writer, so a
file that is not byte-identical to its own normalised round trip also changes on the first save.
The Jupytext sources (notebooks/NN_*.py) carry the same kernelspec, so saving one from Lab
keeps its header.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelspec import get_kernel_dict

from reprolib.notebooks.runner import KERNELSPEC

CHECKOUT = Path(__file__).resolve().parents[1]
# The offline studies' executed copies (the smoke and dry-run ones are test outputs, not committed).
COMMITTED = sorted(p for study in ("embedded", "imagenet-lite")
                   for p in (CHECKOUT / "notebooks" / "executed" / study).glob("*.ipynb"))


def test_the_kernelspec_is_the_one_ipykernel_installs() -> None:
    spec = get_kernel_dict()
    assert KERNELSPEC == {"name": "python3", "display_name": spec["display_name"], "language": spec["language"]}


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_committed_executed_notebook_would_not_be_rewritten(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    notebook = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    nbformat.validate(notebook)
    assert (notebook.nbformat, notebook.nbformat_minor) == (nbformat.current_nbformat, nbformat.current_nbformat_minor)
    assert notebook.metadata["kernelspec"] == KERNELSPEC, notebook.metadata["kernelspec"]
    language = dict(notebook.metadata["language_info"])
    kernel_language = dict(IPythonKernel.language_info)
    # The Python patch version is the machine's that ran it; everything else is ipykernel's constant.
    assert {k: v for k, v in language.items() if k != "version"} == \
        {k: v for k, v in kernel_language.items() if k != "version"}
    assert nbformat.writes(notebook) + "\n" == text, f"{path.name} is not in nbformat's normal form"
    assert all(c.get("id", "").startswith("cell-") for c in notebook.cells)


def test_the_sources_carry_the_same_kernelspec() -> None:
    import jupytext

    for source in sorted((CHECKOUT / "notebooks").glob("[0-9][0-9]_*.py")):
        spec = jupytext.read(source).metadata["kernelspec"]
        assert spec == KERNELSPEC, f"{source.name}: {spec}"


def test_the_committed_copies_exist() -> None:
    assert len(COMMITTED) >= 20


def test_saving_a_source_from_jupyterlab_leaves_it_unchanged(tmp_path) -> None:
    """What Lab's autosave does to an opened NN_*.py: the kernel's metadata set, then jupytext's
    contents manager writes it back (it would add a version stamp without the sources' filter)."""
    import asyncio
    import shutil

    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
    from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class

    sources = sorted((CHECKOUT / "notebooks").glob("[0-9][0-9]_*.py"))
    for source in sources:
        shutil.copy(source, tmp_path / source.name)
    manager = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(root_dir=str(tmp_path))

    async def open_and_save(name: str) -> None:
        model = await manager.get(name, content=True, type="notebook")
        notebook = model["content"]
        notebook["metadata"]["kernelspec"] = dict(KERNELSPEC)
        notebook["metadata"]["language_info"] = dict(IPythonKernel.language_info)
        await manager.save({"type": "notebook", "format": "json", "content": notebook}, name)

    for source in sources:
        asyncio.run(open_and_save(source.name))
        assert (tmp_path / source.name).read_text() == source.read_text(), source.name

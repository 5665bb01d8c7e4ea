"""The workbook as people use it: JupyterLab served headless, driven in Debian's chromium.

Run by `make test-browser` (REPROLIB_BROWSER_TEST=1), after `make test-notebooks` has made the
smoke profile's results and executed notebooks. It opens the explorer on the smoke profile,
runs it, moves the IMP-level slider and the arm dropdown and checks that the numbers line and
the figure change (screenshots in tests/browser/screenshots/), that the browser console shows no
error, and that an executed notebook and a source .py open as notebooks without a load error.

REPROLIB_BROWSER_SABOTAGE=1 serves an explorer whose level slider has no callback: the test
must then fail (that is how we know it can).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("REPROLIB_CHROMIUM", "/usr/bin/chromium")
SHOTS = CHECKOUT / "tests" / "browser" / "screenshots"   # git-ignored test artefacts
TOKEN = "reprolib-browser-test"
SMOKE_LEDGER = CHECKOUT / "artifacts" / "smoke" / "ledger.csv"
SMOKE_EXECUTED = CHECKOUT / "notebooks" / "executed" / "smoke"
# The one line that wires the level slider (and the others) to the redraw; sabotage removes it.
SLIDER_WIRING = 'for key in ("target", "arm", "level", "n_shot"):'
SABOTAGED_WIRING = 'for key in ("target", "arm", "n_shot"):'

if os.environ.get("REPROLIB_BROWSER_TEST") != "1":
    pytest.skip("browser test: run it with `make test-browser` (JupyterLab in headless chromium)",
                allow_module_level=True)
if not Path(CHROMIUM).exists():
    pytest.skip(f"browser test: no chromium at {CHROMIUM}; `apt-get install chromium` as root "
                "(make test-browser does it) or set REPROLIB_CHROMIUM", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api", reason="browser test: the playwright package is missing; "
                                 "`make setup` installs it from requirements.lock")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _workbook(home: Path) -> Path:
    """A workbook home reading the checkout's smoke results (linked) and writing figures to itself,
    so running the explorer in the browser never touches the checkout's artifacts/ or figures/."""
    (home / "artifacts").mkdir()
    (home / "artifacts" / "smoke").symlink_to(SMOKE_LEDGER.parent, target_is_directory=True)
    if (CHECKOUT / "data").exists():
        (home / "data").symlink_to((CHECKOUT / "data").resolve(), target_is_directory=True)
    (home / ".reprolib-home").touch()
    return home


def _served_root(root: Path) -> Path:
    """The notebooks the test opens: the explorer on the smoke profile, an executed copy, a source."""
    import papermill
    import jupytext
    import yaml

    missing = [p for p in (SMOKE_LEDGER, SMOKE_EXECUTED / "05_calibration.ipynb") if not p.exists()]
    if missing:
        pytest.fail(f"browser test needs the smoke results ({missing[0]} is missing): run `make test-notebooks`")
    source = (CHECKOUT / "notebooks" / "11_explorer.py").read_text()
    assert SLIDER_WIRING in source, "the explorer's widget wiring changed: update SLIDER_WIRING"
    if os.environ.get("REPROLIB_BROWSER_SABOTAGE") == "1":
        source = source.replace(SLIDER_WIRING, SABOTAGED_WIRING)
    explorer = jupytext.reads(source, fmt="py:percent")
    explorer.metadata.pop("jupytext", None)
    smoke = yaml.safe_load((CHECKOUT / "reprolib" / "profiles" / "smoke.yaml").read_text())
    declared = {"profile", "source", "artifacts", "figures"}
    papermill.execute_notebook(explorer, str(root / "explorer_smoke.ipynb"), prepare_only=True,
                               parameters={k: v for k, v in smoke.items() if k in declared})
    (root / "executed").mkdir()
    shutil.copy(SMOKE_EXECUTED / "05_calibration.ipynb", root / "executed")
    shutil.copy(CHECKOUT / "notebooks" / "03_accuracy_vs_sparsity.py", root)
    shutil.copy(CHECKOUT / "notebooks" / "index.md", root)
    return root


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a free port with the workbook's settings (as `make lab`); yields its URL."""
    root = _served_root(tmp_path_factory.mktemp("served"))
    home = _workbook(tmp_path_factory.mktemp("home"))
    state = tmp_path_factory.mktemp("lab-state")
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(CHECKOUT / ".jupyter"), "REPROLIB_HOME": str(home),
           "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(state / "ws"),
           "JUPYTER_RUNTIME_DIR": str(state / "runtime"), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.default_url=/lab/tree/index.md"] + (["--allow-root"] if os.geteuid() == 0 else [])
    log = open(state / "lab.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"JupyterLab exited; its log: {(state / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail(f"JupyterLab did not start; its log: {(state / 'lab.log').read_text()[-2000:]}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _page(browser, errors: list[str]):
    page = browser.new_page(viewport={"width": 1500, "height": 1300})
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def _accept_kernel_dialog(page) -> None:
    """A notebook new to this JupyterLab asks which kernel to start: take the proposed python3."""
    try:
        page.wait_for_selector(".jp-Dialog .jp-mod-accept", timeout=15_000)
    except Exception:   # no dialog: the kernel started on its own
        return
    page.locator(".jp-Dialog .jp-mod-accept").click()


def _numbers(page) -> str:
    return page.locator(".reprolib-numbers").first.inner_text()


def _figure(page) -> str:
    return page.locator(".reprolib-figures img").first.get_attribute("src")


def _wait_change(page, before: tuple[str, str], what: str, seconds: float = 90) -> tuple[str, str]:
    """Poll the numbers line and the first figure until both differ from `before`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        page.wait_for_timeout(500)
        try:
            now = (_numbers(page), _figure(page))
        except Exception:   # the output area is being redrawn
            continue
        if now[0] != before[0] and now[1] != before[1]:
            return now
    pytest.fail(f"after {what} the explorer did not redraw within {seconds:.0f} s: numbers still "
                f"{_numbers(page)!r}, figure {'unchanged' if _figure(page) == before[1] else 'changed'}")


def test_explorer_redraws_when_the_slider_and_the_dropdown_move(lab, browser) -> None:
    errors: list[str] = []
    page = _page(browser, errors)
    page.goto(f"{lab}/lab/tree/explorer_smoke.ipynb?token={TOKEN}")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('notebook:run-all-cells')",
                           timeout=60_000)
    _accept_kernel_dialog(page)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    print("browser: explorer open, running all cells", flush=True)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_selector(".reprolib-numbers:has-text('accuracy')", timeout=180_000)
    page.wait_for_selector(".reprolib-figures img", timeout=60_000)
    first = (_numbers(page), _figure(page))
    print(f"browser: drawn: {first[0]}", flush=True)
    assert "imp level 2" in first[0] and "accuracy" in first[0], first[0]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".widget-slider").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "explorer_level_2.png"), full_page=False)

    handle = page.locator(".widget-slider .noUi-handle").first   # the IMP-level slider comes first
    handle.focus()
    page.keyboard.press("ArrowLeft")   # level 2 -> 0 on the smoke profile (levels 0 and 2)
    moved = _wait_change(page, first, "moving the IMP-level slider")
    assert "imp level 0" in moved[0], moved[0]

    arm = page.locator(".widget-dropdown select").nth(2)   # profile, target, arm
    options = arm.locator("option").all_inner_texts()
    arm.select_option(index=(options.index(arm.input_value()) + 1) % len(options))
    switched = _wait_change(page, moved, "choosing another arm")
    page.screenshot(path=str(SHOTS / "explorer_level_0_other_arm.png"), full_page=False)
    assert switched[0].split(" · ")[1] != moved[0].split(" · ")[1]
    assert not errors, f"browser console errors: {errors}"
    page.close()


@pytest.mark.parametrize("path", ["executed/05_calibration.ipynb", "03_accuracy_vs_sparsity.py"])
def test_notebooks_open_as_notebooks(lab, browser, path: str) -> None:
    errors: list[str] = []
    page = _page(browser, errors)
    page.goto(f"{lab}/lab/tree/{path}?token={TOKEN}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)   # a notebook view, not a text editor
    page.wait_for_timeout(1000)
    dialogs = page.locator(".jp-Dialog").all_inner_texts()
    assert not dialogs, f"opening {path} showed a dialog: {dialogs}"
    assert page.locator(".jp-Notebook .jp-Cell").count() > 3
    assert not errors, f"browser console errors opening {path}: {errors}"
    page.close()


def test_lab_lands_on_the_index(lab) -> None:
    with urllib.request.urlopen(f"{lab}/?token={TOKEN}") as response:
        assert response.url.split("?")[0].endswith("/lab/tree/index.md")

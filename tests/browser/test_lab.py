"""A newcomer's path through the workbook: JupyterLab served headless, driven in Debian's chromium.

Run by `make test-browser` (REPROLIB_BROWSER_TEST=1). It works on a fresh `git clone` of this
checkout (its committed state) served as `make lab` serves it: rooted at the clone, landing on
notebooks/index.md. From the index it opens 11_explorer.py and runs all cells on the default
profile. With the shipped embedded results in the clone (artifacts/embedded/ledger.csv,
committed) that is the user's path exactly: nothing trains. Without them the explorer must
say in one line what to run, and the test then picks the smoke profile in the explorer's own
picker (its results, made by `make test-notebooks`, are linked into the clone). It moves
every control (target, arm, shots, network A, the network-B slider, one run's details) and
checks each redraw's numbers against reprolib.plots.explorer.compare_summary for the values
shown, timing each redraw from the browser (the kernel's own time is in the busy sign), and
that no widget label is shown cut. It picks the seed of the one-run panel, then another study
(imagenet-lite) in the explorer's study picker and runs the notebook again, which must open
on that study. Then it opens an executed notebook, lets autosave run, and requires `git
status` of the clone to be clean: choosing a study, opening and running notebooks must not
rewrite any committed file. Timings and the machine's load are printed and written to
tests/browser/screenshots/timings.json (no timing is asserted: a loaded CI machine is not a
benchmark).

REPROLIB_BROWSER_SABOTAGE=1 serves a clone whose network-B slider has no callback: the test
must then fail (that is how we know it can).
"""

from __future__ import annotations

import json
import os
import re
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
SMOKE_ARTIFACTS = CHECKOUT / "artifacts" / "smoke"
EXECUTED = "notebooks/executed/embedded/05_calibration.ipynb"
# The line that wires the controls to the redraw; sabotage drops the network-B slider from it.
WIRING_FILE = "reprolib/plots/explorer_widgets.py"
WIRING = 'for key in (*PICKED, "details", "seed"):'
SABOTAGED = 'for key in (*[k for k in PICKED if k != "b"], "details", "seed"):'
# accuracy, then the metric picked beside it (ECE by default; reprolib.plots.explorer.metric_choices)
NUMBERS = re.compile(r"accuracy \d+\.\d% (\[95% CI -?\d+\.\d, -?\d+\.\d\] \(n=\d+\)|\(one run\)), "
                     r"[A-Za-z ]*(ECE|MCE|NLL|Brier score) \d+\.\d{3}")

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


def _clone(folder: Path) -> Path:
    """A fresh clone of the checkout, its data and the smoke results linked in (both git-ignored)."""
    clone = folder / "reprolib"
    subprocess.run(["git", "clone", "--quiet", str(CHECKOUT), str(clone)], check=True)
    if (CHECKOUT / "data").exists():
        (clone / "data").symlink_to((CHECKOUT / "data").resolve(), target_is_directory=True)
    if SMOKE_ARTIFACTS.exists():
        (clone / "artifacts").mkdir(exist_ok=True)
        (clone / "artifacts" / "smoke").symlink_to(SMOKE_ARTIFACTS.resolve(), target_is_directory=True)
    wiring = clone / WIRING_FILE
    assert WIRING in wiring.read_text(), f"the explorer's wiring changed: update WIRING ({WIRING_FILE})"
    if os.environ.get("REPROLIB_BROWSER_SABOTAGE") == "1":
        wiring.write_text(wiring.read_text().replace(WIRING, SABOTAGED))
    return clone


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """JupyterLab on a fresh clone, as `make lab` serves it; yields (url, clone)."""
    clone = _clone(tmp_path_factory.mktemp("clone"))
    state = tmp_path_factory.mktemp("lab-state")
    settings = state / "settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"autosaveInterval": 2}))   # autosave soon
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(clone / ".jupyter"), "REPROLIB_HOME": str(clone),
           "PYTHONPATH": str(clone), "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(state / "ws"), "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={clone}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.default_url=/lab/tree/notebooks/index.md"] + (["--allow-root"] if os.geteuid() == 0 else [])
    log = open(state / "lab.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=clone)
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
        yield url, clone
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def page(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = chromium.new_page(viewport={"width": 1500, "height": 1300})
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page, errors
        chromium.close()


def _accept_kernel_dialog(page) -> None:
    """A notebook new to this JupyterLab may ask which kernel to start: take the proposed python3."""
    try:
        page.wait_for_selector(".jp-Dialog .jp-mod-accept", timeout=8_000)
    except Exception:   # no dialog: the kernel started on its own
        return
    page.locator(".jp-Dialog .jp-mod-accept").click()


def _state(page) -> tuple[str, str, int]:
    """(numbers line, first figure's src, number of figures) of the explorer."""
    figures = page.locator(".reprolib-figures img")
    count = figures.count()
    return (_text(page.locator(".reprolib-numbers").first.inner_text()),
            figures.first.get_attribute("src") if count else "", count)


def _redraw(page, act, what: str, changed, seconds: float = 60) -> tuple[tuple[str, str, int], float]:
    """Do `act`, then poll until `changed(before, now)`; returns the new state and the seconds it took."""
    before = _state(page)
    started = time.monotonic()
    act()
    while time.monotonic() - started < seconds:
        page.wait_for_timeout(40)
        try:
            now = _state(page)
        except Exception:   # the figure is being replaced
            continue
        if changed(before, now):
            return now, time.monotonic() - started
    pytest.fail(f"after {what} the explorer did not redraw within {seconds:.0f} s: numbers {_state(page)[0]!r}")


def _moved(before, now) -> bool:
    return now[0] != before[0] and now[1] != before[1] and now[0] != ""


def _text(shown: str) -> str:
    """A widget's text as the library wrote it (ipywidgets shows spaces in options as no-break spaces)."""
    return shown.replace("\xa0", " ").strip()


def _expected(clone: Path, profile: str, page) -> str:
    """compare_summary for the values the controls show, computed here from the same ledger."""
    from reprolib.study.ledger import load_ledger   # the checkout's code: the clone's, committed
    from reprolib.plots.explorer import compare_summary, metric_choices, networks

    ledger = load_ledger(clone / "artifacts" / profile)
    selects = page.locator(".widget-dropdown select")
    chosen = [_text(s.locator("option:checked").inner_text()) for s in selects.all()]
    keys = {label: key for label, key in networks(ledger)}
    shots = -1 if chosen[3] == "full data" else int(chosen[3].split("-")[0])
    b = _text(page.locator(".reprolib-network-b").first.inner_text())
    metric = dict(metric_choices(ledger))[chosen[5]]   # the dropdown shows display names
    return compare_summary(ledger, chosen[1], chosen[2], shots, keys[chosen[4]], keys[b], metric)


def _clipped_labels(page) -> list[str]:
    """Widget labels and readouts whose text does not fit their box (shown cut, with an ellipsis)."""
    return page.evaluate("""() => Array.from(document.querySelectorAll(
        '.widget-label, .widget-label-basic, .widget-readout, .widget-checkbox label, .reprolib-network-b'))
        .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
        .map(e => e.innerText)""")


def _run_all(page) -> None:
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def test_landing_on_the_index_and_following_it_to_the_explorer(served, page) -> None:
    """Index -> explorer -> Run All -> every control redraws with the right numbers -> another study
    picked and the notebook run again -> an executed notebook opens and autosaves -> git clean.
    Long because it is one user's path, in order."""
    url, clone = served
    page, errors = page
    timings: dict[str, float] = {}
    started = time.monotonic()
    page.goto(f"{url}/?token={TOKEN}")
    assert page.url.split("?")[0].endswith("/lab/tree/notebooks/index.md")
    link = page.locator(".jp-RenderedMarkdown a", has_text="11 · Sparsity explorer").first
    link.wait_for(timeout=60_000)
    link.click()
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('notebook:run-all-cells')",
                           timeout=60_000)
    _accept_kernel_dialog(page)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    _run_all(page)
    page.wait_for_function("() => { const n = document.querySelector('.reprolib-numbers');"
                           " return n && n.innerText.trim().length > 0; }", timeout=180_000)
    timings["index to a drawn explorer (s)"] = round(time.monotonic() - started, 1)
    line = _state(page)[0]
    profile = "embedded"
    if "no results yet" in line:   # no shipped embedded results in this clone: the one line, then smoke
        assert "make figures PROFILE=embedded" in line and "Traceback" not in page.content(), line
        profile = "smoke"
        _redraw(page, lambda: page.locator(".widget-dropdown select").first.select_option(label="smoke"),
                "choosing the smoke profile", lambda before, now: NUMBERS.search(now[0]) is not None)
    print(f"browser: explorer drawn on {profile}: {_state(page)[0]}", flush=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "explorer_first.png"), full_page=False)
    assert _state(page)[0] == _expected(clone, profile, page)
    assert _clipped_labels(page) == []

    selects = page.locator(".widget-dropdown select")
    for index, name in ((1, "target"), (2, "arm"), (3, "shots"), (4, "network A"), (5, "metric")):
        options = selects.nth(index).locator("option").all_inner_texts()
        if len(options) < 2:
            continue
        current = selects.nth(index).locator("option:checked").inner_text()
        choice = options[(options.index(current) + 1) % len(options)]
        _, seconds = _redraw(page, lambda: selects.nth(index).select_option(label=choice), f"choosing {name}", _moved)
        timings[f"redraw after {name} (s)"] = round(seconds, 2)
        line = _state(page)[0]
        assert NUMBERS.search(line) and line == _expected(clone, profile, page), (name, line)
    handle = page.locator(".widget-slider .noUi-handle").first   # network B: one step towards dense
    handle.focus()
    _, seconds = _redraw(page, lambda: page.keyboard.press("ArrowLeft"), "moving the network-B slider", _moved)
    timings["redraw after network B (s)"] = round(seconds, 2)
    assert _state(page)[0] == _expected(clone, profile, page)
    _, seconds = _redraw(page, lambda: page.locator(".widget-checkbox input").first.check(), "showing one run",
                         lambda before, now: now[2] == 2)
    timings["redraw with one run's details (s)"] = round(seconds, 2)
    seeds = selects.nth(6).locator("option").all_inner_texts()
    if len(seeds) > 1:   # the seed picker: the ring and the one-run panel move to the other seed
        _, seconds = _redraw(page, lambda: selects.nth(6).select_option(label=seeds[-1]), "picking a seed",
                             lambda before, now: now[1] != before[1] and now[2] == 2)
        timings["redraw after seed (s)"] = round(seconds, 2)
    busy = re.search(r"drawn in ([\d.]+) s", _text(page.locator(".reprolib-busy").first.inner_text()))
    assert busy, "the busy sign does not say the redraw finished"
    timings["kernel's last redraw (s)"] = float(busy.group(1))
    assert _clipped_labels(page) == []
    page.screenshot(path=str(SHOTS / "explorer_moved.png"), full_page=False)

    other = "imagenet-lite" if profile == "embedded" and (clone / "artifacts" / "imagenet-lite").exists() else None
    if other:   # another study from the picker, then the notebook run again: it stays on that study
        _, seconds = _redraw(page, lambda: selects.first.select_option(label=other), f"picking {other}", _moved)
        timings[f"redraw after picking {other} (s)"] = round(seconds, 2)
        assert _state(page)[0] == _expected(clone, other, page)
        _run_all(page)
        page.wait_for_function(f"() => {{ const o = Array.from(document.querySelectorAll('.jp-OutputArea-output'));"
                               f" return o.some(e => e.innerText.startsWith('{other}: ')); }}", timeout=180_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=180_000)
        assert page.locator(".widget-dropdown select").first.locator("option:checked").inner_text().startswith(other)
    assert not errors, f"browser console errors: {errors}"

    timings["load average at the end (1, 5, 15 min)"] = _load()
    print(f"browser: timings {timings}", flush=True)
    (SHOTS / "timings.json").write_text(json.dumps({"profile": profile, **timings}, indent=1))

    page.evaluate(f"() => window.jupyterapp.commands.execute('docmanager:open', {{path: '{EXECUTED}'}})")
    # Its cells in the current tab (the explorer's hidden cells also match a plain CSS selector).
    page.wait_for_function(f"() => {{ const w = window.jupyterapp.shell.currentWidget;"
                           f" return w && w.context && w.context.path === '{EXECUTED}' && w.context.isReady"
                           f" && w.content && w.content.widgets && w.content.widgets.length > 3; }}", timeout=60_000)
    _accept_kernel_dialog(page)
    page.wait_for_timeout(8_000)   # the kernel starts and autosave (every 2 s here) has its chances
    dirty = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.dirty")
    assert dirty is False, f"{EXECUTED} is marked modified right after opening"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
    assert status == "", f"choosing a study, running notebooks and opening them changed committed files:\n{status}"

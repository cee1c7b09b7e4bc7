"""A student's first minutes, in a real JupyterLab driven by Chromium: the untouched conv_basics notebook stops
at a NotImplementedError; the solved one runs to the end with every visible test passing.

Screenshots land in _build/screenshots/jupyterlab-*.png.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHOTS = ROOT / "_build" / "screenshots"
ASSIGNMENT = "conv_basics"
RUN_TIMEOUT_MS = 120_000

pytestmark = pytest.mark.browser

# Quiet, deterministic settings: all cells in the DOM (no virtual scrolling), no news or update checks.
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_lab(base: Path, root: Path, **env: str):
    """JupyterLab serving ``root``, its settings, config and runtime under ``base`` (``env`` adds to its
    environment, e.g. HOME); yields (base URL, token) and stops it, with its kernels, on leaving."""
    for name, values in SETTINGS.items():
        path = base / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {"JUPYTER_CONFIG_DIR": str(base / "config"), **env}
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               JUPYTER_RUNTIME_DIR=str(base / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"), **env)
    port, token = free_port(), secrets.token_hex(16)
    log = (base / "lab.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
         "--ServerApp.allow_root=True",  # CI containers often run as root
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}:\n{(base / 'lab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in 90 s:\n{(base / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, token
    finally:
        server.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a scratch copy of the notebooks: yields (base URL, token, root folder)."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    (root / "exercises" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(ROOT / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", root / "exercises" / ASSIGNMENT)
    (root / "solved" / ASSIGNMENT).mkdir(parents=True)  # the instructor notebook: nbgrader metadata, solved
    shutil.copy(ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", root / "solved" / ASSIGNMENT)
    with running_lab(base, root) as (url, token):
        yield url, token, root


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


def open_notebook(page, lab, relative: str) -> None:
    url, token, _ = lab
    page.goto(f"{url}/lab/tree/{relative}?reset&token={token}")  # reset: no tab of an earlier test
    panel(page).locator(".jp-Cell").first.wait_for(timeout=60_000)
    # the kernel (the venv's python3, named by the notebook's metadata) is up: its name shows, the indicator is idle
    try:
        page.locator(".jp-KernelName", has_text="Python 3").first.wait_for(timeout=60_000)
        panel(page).locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=60_000)
    except Exception:
        screenshot(page, "kernel-not-ready")
        raise


def panel(page):
    """The notebook in the current tab."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")


def menu(page, top: str, item: str) -> None:
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{top}$")).click()
    page.locator(".lm-Menu-item", has_text=re.compile(rf"^{re.escape(item)}")).first.click()


def screenshot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"jupyterlab-{name}.png"))


def test_untouched_notebook_stops_at_not_implemented(lab, page):
    open_notebook(page, lab, f"exercises/{ASSIGNMENT}/{ASSIGNMENT}.ipynb")
    menu(page, "Run", "Run All Cells")
    error = panel(page).locator(".jp-OutputArea-output", has_text="NotImplementedError").first
    error.wait_for(timeout=RUN_TIMEOUT_MS)
    error.scroll_into_view_if_needed()
    screenshot(page, "untouched")
    outputs = panel(page).locator(".jp-OutputArea-output").all_inner_texts()
    errors = [text for text in outputs if "Traceback" in text or "Error" in text]
    assert errors and all("NotImplementedError" in text for text in errors), errors


def test_solved_notebook_passes_every_visible_test(lab, page):
    open_notebook(page, lab, f"solved/{ASSIGNMENT}/{ASSIGNMENT}.ipynb")
    menu(page, "Run", "Run All Cells")
    # done when every code cell shows an execution count and the kernel is idle again
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""", timeout=RUN_TIMEOUT_MS)
    panel(page).locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=RUN_TIMEOUT_MS)
    outputs = panel(page).locator(".jp-OutputArea-output").all_inner_texts()
    panel(page).locator(".jp-CodeCell").last.scroll_into_view_if_needed()
    screenshot(page, "solved")
    assert not [text for text in outputs if "Traceback" in text or "Error" in text], outputs
    notebook = nbformat.read(lab[2] / "solved" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    tests = [cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade")]
    passed = [text for text in outputs if "visible tests passed" in text]
    assert len(passed) == len(tests) >= 5, outputs

    menu(page, "File", "Save Notebook")  # then read what JupyterLab saved: the same story, cell by cell
    path = lab[2] / "solved" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        saved = nbformat.read(path, as_version=4)
        code = [cell for cell in saved.cells if cell.cell_type == "code"]
        if all(cell.execution_count for cell in code):
            break
        time.sleep(0.5)
    assert all(cell.execution_count for cell in code), "not every code cell ran"
    assert not [output for cell in code for output in cell.outputs if output.output_type == "error"]
    assert code[-1].execution_count == max(cell.execution_count for cell in code), "the last cell ran last"

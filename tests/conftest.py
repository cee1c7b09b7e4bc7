"""Fixtures shared by the test suite: the repository, the built book, a local server, Chromium."""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-gpu"]


@pytest.fixture(scope="session")
def repo() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def built_site() -> Path:
    """Build the book once per test session (reusing the execution cache) and return _build/html."""
    result = subprocess.run([str(BIN / "jupyter-book"), "build", str(ROOT), "--warningiserror", "--keep-going"],
                            cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"jupyter-book build failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return ROOT / "_build" / "html"


@dataclass(frozen=True)
class Generated:
    """What `make exercises` makes, made in a scratch folder: ``release`` (the student versions of every
    assignment) and ``gradebook``; the repository's own gradebook and nbgrader log, as (name, mtime or False),
    before and after."""
    release: Path
    gradebook: Path
    repository_before: list
    repository_after: list


def repository_state() -> list:
    return [(name, (ROOT / name).exists() and (ROOT / name).stat().st_mtime)
            for name in ("gradebook.db", ".nbgrader.log")]


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> Generated:
    """Every assignment of solutions/ through `nbgrader generate_assignment`, into a scratch release folder and
    gradebook, once per session: test_exercises.py compares the release with exercises/, and the gradebook is
    ``course_gradebook``."""
    base = tmp_path_factory.mktemp("gradebook")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # nbgrader runs alembic from PATH
    before = repository_state()
    for assignment in sorted(folder.name for folder in (ROOT / "solutions").iterdir() if folder.is_dir()):
        run = subprocess.run([str(BIN / "nbgrader"), "generate_assignment", assignment, "--force",
                              f"--CourseDirectory.root={ROOT}",
                              f"--CourseDirectory.release_directory={base / 'release'}",
                              f"--CourseDirectory.db_url=sqlite:///{base / 'gradebook.db'}"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return Generated(base / "release", base / "gradebook.db", before, repository_state())


@pytest.fixture(scope="session")
def course_gradebook(generated) -> Path:
    """A gradebook as `make exercises` leaves it: every assignment recorded by `nbgrader generate_assignment`
    (into a scratch folder; the repository's own gradebook is not touched). Copy it before writing into it."""
    return generated.gradebook


@pytest.fixture(scope="session")
def nbgrader_class(tmp_path_factory):
    """A real nbgrader course with conv_basics released, worked, submitted, collected and graded by the kit, built
    once (tests/test_nbgrader_course.py's ``graded_class``): ``nbgrader_class(folder)`` copies it into a new
    folder, for a test module to change as it likes."""
    from test_nbgrader_course import copy_class, graded_class

    snapshot = graded_class(tmp_path_factory.mktemp("nbgrader-class") / "class")
    return lambda folder: copy_class(snapshot, folder)


@pytest.fixture(scope="session")
def serve():
    """Serve a folder on 127.0.0.1 and return its base URL: ``serve(folder) -> 'http://127.0.0.1:PORT'``."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (installed by `make chromium`)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package (`make chromium`).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()

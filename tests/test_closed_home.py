"""Grading from a course installed behind a folder other users cannot enter, as root.

A checkout in a ``mktemp -d`` folder (``0700``) with its own venv: student code runs as a user id of
its own, which cannot enter that folder. The grader must still let it import what it has not imported
before (a module of the venv, a module of the standard library), keep the hidden suites out of its
reach, and refuse with a message naming the folder where it cannot open a way.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="student code gets a user id of its own only under root")

PROBE = """
import wave                      # the standard library: not imported by the grader before it forks
import course_notes              # a module of the venv inside the closed folder
print("imported", wave.__name__, course_notes.WHERE)
try:
    open({suite!r}).read()
    print("read the hidden suite")
except OSError as error:
    print("hidden suite:", type(error).__name__)
"""


@pytest.fixture
def closed_course():
    """(python, checkout): a venv and a copy of the course inside a fresh 0700 folder."""
    home = Path(tempfile.mkdtemp(prefix="closed-home-"))
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    checkout, venv = home / "course", home / "venv"
    for package in ("autograder", "coursekit"):
        shutil.copytree(ROOT / package, checkout / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    packages = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    # torch and the rest come from this project's venv (a .pth line), as a smaller install would have them
    (packages / "project.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    (packages / "course_notes.py").write_text("WHERE = 'behind a closed folder'\n")
    yield venv / "bin" / "python", checkout
    shutil.rmtree(home)


def grade(python: Path, checkout: Path, cells: list[str], tmp_path: Path, prefix: list[str] = ()):
    notebook = nbformat.read(ROOT / "solutions" / "conv_basics" / "conv_basics.ipynb", as_version=4)
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(notebook, tmp_path / "alice.ipynb")
    return subprocess.run([*prefix, str(python), "-m", "autograder", "grade", "conv_basics",
                           str(tmp_path / "alice.ipynb"), "--out", str(tmp_path / "out"), "--workers", "1"],
                          cwd=checkout, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})


@pytest.mark.slow
def test_student_code_imports_from_a_closed_folder_but_cannot_read_the_suites(closed_course, tmp_path):
    python, checkout = closed_course
    suite = checkout / "autograder" / "suites" / "conv_basics" / "test_corr2d.py"
    run = grade(python, checkout, [PROBE.format(suite=str(suite))], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "alice" / "conv_basics" / "results.json").read_text())
    assert "imported wave behind a closed folder" in result["output"], result["output"]
    # the tmpfs over the closed folder hides the suite (FileNotFoundError); Landlock would refuse it anyway
    assert "hidden suite: FileNotFoundError" in result["output"], result["output"]
    assert result["score"] == result["extra_data"]["max_score"] > 0, result["output"]


def test_a_package_closed_to_other_users_is_refused_by_name(closed_course, tmp_path):
    python, checkout = closed_course
    closed = next(python.parent.parent.glob("lib/python*/site-packages")) / "closed_package"
    closed.mkdir(mode=0o700)  # what pip leaves under umask 077
    run = grade(python, checkout, [], tmp_path)
    assert run.returncode != 0 and not (tmp_path / "out" / "alice").exists()
    assert f"{closed} (mode drwx------)" in run.stderr and "chmod -R o+rX" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.skipif(not shutil.which("setpriv"), reason="util-linux's setpriv drops a capability for the test")
def test_without_mount_namespaces_the_closed_folder_is_named_with_the_fix(closed_course, tmp_path):
    python, checkout = closed_course
    run = grade(python, checkout, [], tmp_path, prefix=[shutil.which("setpriv"), "--bounding-set=-sys_admin"])
    home = str(checkout.parent)
    assert run.returncode != 0 and not (tmp_path / "out" / "alice").exists()
    assert "cannot enter" in run.stderr and "chmod o+x" in run.stderr and home in run.stderr, run.stderr
    assert "Traceback" not in run.stderr

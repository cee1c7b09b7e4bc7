"""Cells are read as Jupyter reads them (IPython's own transformer), then run in a real sandbox."""
from __future__ import annotations

import os
import resource

import nbformat
import pytest

from autograder.notebook import read_submission, runnable
from autograder.sandbox import Sandbox

UNTOUCHED = {
    "a %-formatted print continued on the next line": 'print("loss %.4f acc %.4f"\n      % (loss, acc))\n',
    "a condition continued on a line starting with !=": 'ok = (mode\n        != "max")\n',
    "a modulo at the end of a line": "x = (7 %\n     3)\n",
}


@pytest.mark.parametrize("case", UNTOUCHED)
def test_python_stays_untouched(case):
    assert runnable(UNTOUCHED[case]) == UNTOUCHED[case]


def test_cell_magic_body_keeps_its_line_numbers():
    assert runnable("%%time\ndef f():\n    return 1\n") == "\ndef f():\n    return 1\n"


CELLS = [
    "%matplotlib inline\n!pip install --quiet something\nfiles = !ls\nimport math",
    "%%time\ndef area(r):\n    return math.pi * r ** 2\n%time half = area(1) / 2",
    "%%capture captured\ndef twice(x):\n    %time y = 2 * x\n    return y",
    "%%bash\necho this never runs",
    "area?",
]


def test_notebook_with_magics_runs_in_the_sandbox():
    sandbox = Sandbox([(index, runnable(source)) for index, source in enumerate(CELLS, 1)])
    sandbox.start()
    try:
        assert not [note for note in sandbox.notes if note.startswith("cell ")]  # no cell failed
        assert sandbox.call("area", 1.0) == pytest.approx(3.14159, abs=1e-5)
        assert sandbox.call("twice", 4) == 8
        assert sandbox.run("result = (half, files)") == (pytest.approx(1.5708, abs=1e-4), [])
    finally:
        sandbox.close()


def test_cells_are_numbered_as_jupyter_shows_them(tmp_path):
    """Code cells count among code cells only (markdown is not numbered), skipped ones included, so a
    message names the cell a student finds; what each top-level def or class defines is located, even in a
    cell that does not parse."""
    cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("import math"),
             nbformat.v4.new_markdown_cell("Write `area`."), nbformat.v4.new_code_cell("assert area(1) > 3"),
             nbformat.v4.new_code_cell("\n%%time\ndef area(r):\n    return math.pi * r ** 2\nclass Circle:\n    pass"),
             nbformat.v4.new_code_cell("def broken(x)\n    return x")]
    cells[3].metadata["nbgrader"] = {"grade": True, "solution": False}  # a visible test: not run, still counted
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / "n.ipynb")
    submission = read_submission(tmp_path / "n.ipynb", "alice", "a")
    assert [position for position, _ in submission.cells] == [1, 3, 4]
    assert submission.labels[3] == "code cell 3 (`%%time`)"
    assert submission.labels[4] == "code cell 4 (`def broken(x)`)"
    assert submission.defined == {"area": 3, "Circle": 3, "broken": 4}


SECRET = "the answer key: 42"


def make_link(path):
    (path.parent / "key.txt").write_text(SECRET)
    path.symlink_to(path.parent / "key.txt")


def make_sparse(path):
    with open(path, "wb") as file:
        file.write(b'{"cells": []')
        file.truncate(2 * 2**30)


@pytest.mark.parametrize("make, reason", [
    (make_link, "the notebook is a symbolic link"),
    (lambda path: os.mkfifo(path), "the notebook is not a regular file"),  # a FIFO would block a plain open
    (lambda path: path.mkdir(), "the notebook is not a regular file"),
    (make_sparse, "the notebook is larger than 20 MB"),
    (lambda path: path.write_text(SECRET), "the file is not a valid Jupyter notebook (it is not JSON)"),
    (lambda path: path.write_text('{"cells": "' + SECRET + '"}'), "the file is not a valid Jupyter notebook")])
def test_files_refused_unread_and_unquoted(tmp_path, make, reason):
    """Checked on the open file before a byte is read, and the reason never quotes the file."""
    path = tmp_path / "alice.ipynb"
    make(path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    submission = read_submission(path, "alice", "conv_basics")
    assert submission.status == "unreadable" and submission.error.startswith(reason), submission.error
    assert "42" not in submission.error and not submission.cells
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 30 * 2**10  # KB: nothing big was read

"""Cells are read as Jupyter reads them (IPython's own transformer), then run in a real sandbox."""
from __future__ import annotations

import pytest

from autograder.notebook import runnable
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

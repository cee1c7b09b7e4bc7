"""The convention nbgrader and the kit share (issue 21): each function the hidden suite grades has exactly one visible
test cell in solutions/, `test_<function>`, worth that function's hidden points (the tests every grader runs; a CUDA
grader's extra tests are scaled in). The gradebook's cells are made from these, and the kit records each function's
score there, so a change of points in a suite must come with the same change in its notebook.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = sorted(p.name for p in (ROOT / "autograder" / "suites").iterdir() if any(p.glob("test_*.py")))
# Collected in a process of its own (the suites are not imported into this one): name, points, CUDA-only.
COLLECT = """
import json, sys
import pytest
from autograder import SUITES
from autograder.plugin import GradingPlugin

class Cuda:
    def pytest_collection_modifyitems(self, items):
        self.only = {item.nodeid for item in items if item.get_closest_marker("cuda")}

plugin, cuda = GradingPlugin(None, "cpu"), Cuda()
code = pytest.main([str(SUITES / sys.argv[1]), "-c", str(SUITES / "pytest.ini"), "--rootdir", str(SUITES),
                    "--collect-only", "-q"], plugins=[plugin, cuda])
print(json.dumps([[name, points, node in cuda.only] for node, (name, points, _, _) in plugin.meta.items()]))
sys.exit(int(code))
"""


def hidden_points(assignment: str) -> Counter:
    run = subprocess.run([sys.executable, "-c", COLLECT, assignment], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    from autograder.gradebook import function_of

    points = Counter()
    for name, value, cuda_only in json.loads(run.stdout.strip().splitlines()[-1]):
        points[f"test_{function_of(name)}"] += 0 if cuda_only else value
    return points


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_each_graded_function_has_one_test_cell_worth_its_hidden_points(assignment):
    notebook = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    cells = Counter()
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            cells[meta["grade_id"]] += meta["points"]
    ids = [cell.metadata["nbgrader"]["grade_id"] for cell in notebook.cells if cell.metadata.get("nbgrader", {})
           .get("grade")]
    assert len(ids) == len(set(ids)), f"{assignment}: a grade id used twice: {ids}"
    assert dict(cells) == dict(hidden_points(assignment)), (
        f"{assignment}: the test cells' points (left) differ from the hidden suite's points per function (right)")

"""The grader's DesignNet training and rebuild, run in this process on nets the project wrote.

``InProcess`` stands where a submission's sandbox stands in ``autograder/suites/cnn_vs_fc/test_training.py``: it
executes the grader's own code with a notebook's names in scope (DesignNet, train_one_epoch, evaluate), so the
bench measures exactly what the grader grades, and a test can compare it with the notebook's own cells. It is no
sandbox: only the project's code runs in it.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "autograder" / "suites" / "cnn_vs_fc"
sys.path[:0] = [str(ROOT), str(SUITE)]

import reference  # noqa: E402


class InProcess:
    def __init__(self, **names) -> None:
        self.names = names

    def run(self, code: str, *, timeout: float | None = None, what: str = "", **inputs):
        scope = {**self.names, **inputs}
        exec(code, scope)  # noqa: S102 - the grader's own code
        return scope["result"]


def with_reference_loops(design_net) -> InProcess:
    """A notebook whose DesignNet is ``design_net`` and whose loops are the grader's reference loops."""
    return InProcess(DesignNet=design_net,
                     train_one_epoch=lambda model, loader, optimizer, criterion, device="cpu":
                         reference.train_one_epoch(model, loader, optimizer, criterion),
                     evaluate=lambda model, loader, criterion, device="cpu": reference.evaluate(model, loader, criterion))


def suite_data():
    """The suite's data (its conftest's ``mnist`` fixture, called as a function)."""
    spec = importlib.util.spec_from_file_location("cnn_vs_fc_conftest", SUITE / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.mnist.__wrapped__()

"""The pytest plugin that turns a hidden suite's outcomes into :class:`TestResult` objects.

Weights come from ``@pytest.mark.points(n)`` (default 1), names from each test's docstring
(formatted with its parameters), CUDA-only tests carry ``@pytest.mark.cuda``. Tests get the
submission's sandbox through the ``submission`` fixture and the grading device through ``device``.
"""
from __future__ import annotations

import pytest

from autograder.results import TestResult
from autograder.sandbox import Sandbox


class GradingPlugin:
    def __init__(self, sandbox: Sandbox, device: str) -> None:
        self._sandbox, self._device = sandbox, device
        self.meta: dict[str, tuple[str, float, str]] = {}
        self.results: list[TestResult] = []

    def pytest_configure(self, config) -> None:
        config.addinivalue_line("markers", "points(n): the test's weight in the score (default 1)")
        config.addinivalue_line("markers", "cuda: needs a CUDA device; skipped on a CPU-only grader")
        config.addinivalue_line("markers", "visibility(v): Gradescope visibility (default 'visible')")

    @pytest.fixture
    def submission(self) -> Sandbox:
        return self._sandbox

    @pytest.fixture
    def device(self) -> str:
        return self._device

    def pytest_collection_modifyitems(self, items) -> None:
        for item in items:
            self.meta[item.nodeid] = (test_name(item), marker_arg(item, "points", 1), marker_arg(item, "visibility",
                                                                                                "visible"))
            if item.get_closest_marker("cuda") and self._device != "cuda":
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; this grader has none"))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.failed and call.excinfo is not None:
            report.grading_message = failure_message(call.excinfo.value)

    def pytest_runtest_logreport(self, report) -> None:
        if not (report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        name, points, visibility = self.meta[report.nodeid]
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else "skipped"
            self.results.append(TestResult(name, 0, points, "skipped", reason.removeprefix("Skipped: "), visibility))
        elif report.passed:
            self.results.append(TestResult(name, points, points, "passed", "", visibility))
        else:
            message = getattr(report, "grading_message", "the test failed")
            self.results.append(TestResult(name, 0, points, "failed", message, visibility))


def test_name(item) -> str:
    doc = (getattr(item, "function", None).__doc__ or item.name).strip().splitlines()[0]
    params = getattr(getattr(item, "callspec", None), "params", {})
    return doc.format(**params) if params else doc


def marker_arg(item, name: str, default):
    marker = item.get_closest_marker(name)
    return marker.args[0] if marker else default


def failure_message(error: BaseException) -> str:
    """Assertion messages speak for themselves; anything else was raised while checking a value."""
    if isinstance(error, AssertionError):
        return str(error).split("\nassert ")[0].strip() or "the check failed"
    return f"checking the value your code returned raised {type(error).__name__}: {error}"

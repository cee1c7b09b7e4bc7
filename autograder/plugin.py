"""The pytest plugin that turns a hidden suite's outcomes into :class:`TestResult` objects.

Weights come from ``@pytest.mark.points(n)`` (default 1), names from each test's docstring
(formatted with its parameters), CUDA-only tests carry ``@pytest.mark.cuda``. Tests get the
submission's sandbox through the ``submission`` fixture and the grading device through ``device``; a passed
test tells the student what it measured with pytest's ``record_property("feedback", text)``, and
``@pytest.mark.book(page, section)`` (on a test or a whole module) names the book's section that teaches it.

Graded on CUDA, only the tests marked ``cuda`` use the submission's CUDA sandbox (``gpu``), and they
run last, so that it can start while the other tests run in the CPU sandbox. A test that failed
with CUDA out-of-memory while another sandbox held more than its share of the GPU runs again once
that sandbox is stopped (:attr:`GradingPlugin.reruns` says which and why).
"""
from __future__ import annotations

import re

import pytest
from _pytest.runner import runtestprotocol  # what pytest's own protocol runs; public API has no re-run

from autograder import misconceptions
from autograder.results import TestResult
from autograder.sandbox import Sandbox, trusted


class GradingPlugin:
    def __init__(self, sandbox: Sandbox, device: str, gpu: Sandbox | None = None) -> None:
        self._sandbox, self._device, self._gpu = sandbox, device, gpu
        self.meta: dict[str, tuple[str, float, str, dict]] = {}
        self.order: dict[str, int] = {}  # nodeid -> its place in the suite
        self.reruns: list[dict[str, str]] = []
        self._results: list[tuple[int, TestResult]] = []

    @property
    def results(self) -> list[TestResult]:
        """In the suite's order, whatever order they ran in."""
        return [result for _, result in sorted(self._results, key=lambda pair: pair[0])]

    def pytest_configure(self, config) -> None:
        config.addinivalue_line("markers", "points(n): the test's weight in the score (default 1)")
        config.addinivalue_line("markers", "cuda: needs a CUDA device; skipped on a CPU-only grader")
        config.addinivalue_line("markers", "visibility(v): Gradescope visibility (default 'visible')")
        config.addinivalue_line("markers", "book(page, section): the book's section that teaches it, for feedback")

    @pytest.fixture
    def submission(self, request) -> Sandbox:
        return self.sandbox_for(request.node)

    def sandbox_for(self, item) -> Sandbox:
        return self._gpu if self._gpu is not None and item.get_closest_marker("cuda") else self._sandbox

    @pytest.fixture
    def device(self) -> str:
        return self._device

    def pytest_collection_modifyitems(self, items) -> None:
        for index, item in enumerate(items):
            self.order[item.nodeid] = index
            self.meta[item.nodeid] = (test_name(item), marker_arg(item, "points", 1),
                                      marker_arg(item, "visibility", "visible"), book_section(item))
            if item.get_closest_marker("cuda") and self._device != "cuda":
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; this grader has none"))
        if self._gpu is not None:
            items.sort(key=lambda item: bool(item.get_closest_marker("cuda")))  # stable: CUDA tests last

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem) -> bool:
        """pytest's own protocol, and once more for a test whose CUDA memory another sandbox took."""
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        trusted.next_test()
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        if any(r.failed for r in reports) and (why := self.sandbox_for(item).memory_taken_by_another()):
            self.reruns.append({"test": self.meta[item.nodeid][0],
                                "reason": f"{why}; that sandbox was stopped and this test ran again"})
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
        for report in reports:
            item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        with trusted.checking():  # the test's body: where the grader's own CPU bound fails it
            yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.failed and call.excinfo is not None:
            report.grading_message = failure_message(call.excinfo.value)
            if grader_bound(call.excinfo.value):  # it may have cut a request short: the sandboxes start afresh
                for box in {self._sandbox, self._gpu} - {None}:
                    box.restart()

    def pytest_runtest_logreport(self, report) -> None:
        if not (report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        name, points, visibility, book = self.meta[report.nodeid]
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else "skipped"
            result = TestResult(name, 0, points, "skipped", reason.removeprefix("Skipped: "), visibility)
        elif report.passed:
            told = dict.fromkeys(str(text) for key, text in report.user_properties if key == "feedback")
            result = TestResult(name, points, points, "passed", "\n".join(told), visibility)
        else:
            message = getattr(report, "grading_message", "the test failed")
            result = TestResult(name, 0, points, "failed", message, visibility)
            if misconception := misconceptions.named_in(name.split(":")[0], message):
                book = section(*misconception.book)  # the section that teaches what went wrong
                result.extra_data["misconception"] = misconception.name
            elif "wrong dtype" in message.split("\n")[0]:
                book = {}  # no section of the book is about dtypes: a link would send the student hunting
        if book:
            result.extra_data["book"] = book
        self._results.append((self.order[report.nodeid], result))


def test_name(item) -> str:
    doc = (getattr(item, "function", None).__doc__ or item.name).strip().splitlines()[0]
    params = getattr(getattr(item, "callspec", None), "params", {})
    return doc.format(**params) if params else doc


def marker_arg(item, name: str, default):
    marker = item.get_closest_marker(name)
    return marker.args[0] if marker else default


def book_section(item) -> dict:
    """``@pytest.mark.book("03_stride", "The output-shape formula")`` as the page's path in the built book, the
    section (its anchor made as Sphinx makes it) and the chapter's number; {} without the marker."""
    marker = item.get_closest_marker("book")
    return section(*marker.args) if marker else {}


def section(page: str, title: str) -> dict:
    anchor = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return {"path": f"book/{page}.html#{anchor}", "section": title, "chapter": int(page.split("_")[0])}


def grader_bound(error: BaseException) -> bool:
    """Whether ``error`` is the grader's own work on the test running past a bound (:mod:`.sandbox.trusted`)."""
    return isinstance(error, (MemoryError, trusted.GraderBoundExceeded)) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error))


def failure_message(error: BaseException) -> str:
    """Assertion messages speak for themselves; anything else was raised while checking a value."""
    if grader_bound(error) and not isinstance(error, trusted.GraderBoundExceeded):
        return (f"checking what the notebook returned needed more than the {trusted.MEMORY_MB} MB of memory the "
                "grader allows itself for one submission")
    if isinstance(error, AssertionError):
        return str(error).split("\nassert ")[0].strip() or "the check failed"
    return f"checking the value your code returned raised {type(error).__name__}: {error}"

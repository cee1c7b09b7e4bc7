"""One results type for a graded submission, with every output format as a method.

Results live in nbgrader's layout, one folder per student and assignment:
``OUT/<student>/<assignment>/results.json`` (Gradescope's schema), ``feedback.txt`` and ``feedback.html``,
with one ``OUT/grades.csv`` for every result in ``OUT``.
"""
from __future__ import annotations

import csv
import functools
import html
import io
import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder.submissions import shown

RESULTS, FEEDBACK, FEEDBACK_HTML = "results.json", "feedback.txt", "feedback.html"
CSV_FIELDS = ["student", "assignment", "score", "max_score", "status", "tests_passed", "tests_failed",
              "execution_time", "late", "in_last_run"]
LIKELY = "likely mistake: "  # the line of a failure message naming a misconception (autograder/misconceptions.py)
GRADED = "graded"  # the status of a notebook the suite ran on; any other says why it could not be graded


@dataclass
class TestResult:
    name: str                      # "corr2d: stride (2, 3) on a 7×9 input"
    score: float
    max_score: float
    status: str                    # "passed", "failed" or "skipped"
    output: str = ""
    visibility: str = "visible"
    extra_data: dict = field(default_factory=dict)  # "book": the book's section that teaches it (its suite says)


@dataclass
class SubmissionResult:
    student: str
    assignment: str
    tests: list[TestResult] = field(default_factory=list)
    execution_time: float = 0.0
    output: str = ""               # notes for the student: warnings, crashes, the notebook's output
    notebook_sha256: str = ""
    suite_sha256: str = ""         # the hidden suite that graded it: a changed suite means a regrade
    status: str = GRADED           # or why not: "unreadable", "several notebooks", "no notebook", "grader error"
    notebook: str = ""             # the name of the file graded
    causes: list[str] = field(default_factory=list)  # what kept the notebook from running as written (first)
    device: str = ""               # the device and limits it was graded under: a change of either may regrade
    limits: dict = field(default_factory=dict)
    limits_hit: list[str] = field(default_factory=list)  # the fields of `limits` that stopped something
    reruns: list[dict] = field(default_factory=list)  # tests run again ({"test", "reason"}): another took the GPU
    grader_usage: dict = field(default_factory=dict)  # what grading it cost the trusted side: cpu_seconds, peak_mb
    late: bool = False             # the LMS marked the file graded late
    absent: bool = False           # not in the folder the latest run of its assignment graded: kept, and marked

    @property
    def graded(self) -> list[TestResult]:
        return [t for t in self.tests if t.status != "skipped"]

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.graded), 6)

    @property
    def max_score(self) -> float:
        return round(sum(t.max_score for t in self.graded), 6)

    def to_gradescope_dict(self) -> dict:
        """Gradescope's results.json: its ``output`` (shown above the tests) says what the feedback says
        outside the tests; skipped tests (no GPU here) are listed there and in ``extra_data`` only."""
        return {
            "score": self.score,
            "execution_time": round(self.execution_time, 3),
            "output": "\n".join(self.causes_text() + self.closing_text()).strip(),
            "tests": [asdict(t) for t in self.graded],
            "extra_data": {"student": self.student, "assignment": self.assignment, "status": self.status,
                           "notebook": self.notebook, "max_score": self.max_score,
                           "notebook_sha256": self.notebook_sha256, "suite_sha256": self.suite_sha256,
                           "device": self.device, "limits": self.limits, "limits_hit": self.limits_hit,
                           "causes": self.causes, "notes": self.output, "reruns": self.reruns,
                           "grader_usage": self.grader_usage, "late": self.late, "absent": self.absent,
                           "skipped": [asdict(t) for t in self.tests if t.status == "skipped"]},
        }

    @classmethod
    def from_gradescope_dict(cls, data: dict) -> "SubmissionResult":
        extra = data.get("extra_data", {})
        tests = [TestResult(**t) for t in data["tests"]] + [TestResult(**t) for t in extra.get("skipped", [])]
        return cls(student=extra["student"], assignment=extra["assignment"], tests=tests,
                   execution_time=data.get("execution_time", 0.0), output=extra.get("notes", data.get("output", "")),
                   notebook_sha256=extra.get("notebook_sha256", ""), suite_sha256=extra.get("suite_sha256", ""),
                   status=extra.get("status", GRADED), notebook=extra.get("notebook", ""),
                   causes=extra.get("causes", []), device=extra.get("device", ""), limits=extra.get("limits", {}),
                   limits_hit=extra.get("limits_hit", []), reruns=extra.get("reruns", []),
                   grader_usage=extra.get("grader_usage", {}), late=extra.get("late", False),
                   absent=extra.get("absent", False))

    def csv_row(self) -> dict:
        return {"student": self.student, "assignment": self.assignment, "score": self.score,
                "max_score": self.max_score, "status": self.status,
                "tests_passed": sum(t.status == "passed" for t in self.tests),
                "tests_failed": sum(t.status == "failed" for t in self.tests),
                "execution_time": round(self.execution_time, 2), "late": "yes" if self.late else "",
                "in_last_run": "no" if self.absent else "yes"}

    def feedback_text(self, book_url: str | None = None) -> str:
        """What the student reads: the file and the score, what kept the notebook from running as written,
        then each test in the notebook's order with what went wrong and where the book (published at
        ``book_url``) teaches it, then what was not run here. A function not written yet is one line."""
        book_url = published_book() if book_url is None else book_url
        lines = [f"{self.assignment} — {self.student}"]
        lines += [f"Graded file: {shown(self.notebook)}"] if self.notebook else []
        lines += [f"Score: {self.score:g} / {self.max_score:g}", ""] + self.causes_text()
        for subject, tests in self.by_subject():
            if subject in self.not_implemented():
                lines.append(f"[FAIL] {subject}: nothing implemented yet (it raises NotImplementedError): "
                             f"{len(tests)} tests, 0/{sum(t.max_score for t in tests):g}")
                continue
            for test in tests:
                mark = {"passed": "PASS", "failed": "FAIL"}[test.status]
                lines.append(f"[{mark}] {test.name} ({test.score:g}/{test.max_score:g})")
                if test.output not in self.causes:  # a cause is said once, above; a passed test's: what it measured
                    lines.extend("    " + line for line in test.output.splitlines())
                if test.status == "failed" and (where := book_section(test, book_url)):
                    lines.append(f"    The book explains this: {where}")
        return "\n".join(lines + [""] + self.closing_text()).rstrip() + "\n"

    def by_subject(self) -> list[tuple[str, list[TestResult]]]:
        """The graded tests in their order, grouped by what they test (the name before the colon)."""
        groups: list[tuple[str, list[TestResult]]] = []
        for test in self.graded:
            subject = test.name.split(":")[0].strip()
            if groups and groups[-1][0] == subject:
                groups[-1][1].append(test)
            else:
                groups.append((subject, [test]))
        return groups

    def not_implemented(self) -> set[str]:
        """What the student has not written yet: every test of it failed with the exercise's NotImplementedError."""
        return {subject for subject, tests in self.by_subject()
                if all(t.status == "failed" and "NotImplementedError" in t.output for t in tests)}

    def causes_text(self) -> list[str]:
        if not self.causes:
            return []
        follows = any(t.status == "failed" and t.output in self.causes for t in self.graded)
        heading = (f"Not graded ({self.status}):" if self.status != GRADED else
                   "Your notebook did not run as written" + (" (the failed tests below follow from this):"
                                                             if follows else ":"))
        return [heading, *("    " + line for cause in self.causes for line in cause.splitlines()), ""]

    def closing_text(self) -> list[str]:
        """One line per reason tests were not run here (they do not count), then the notes."""
        lines = []
        for reason in dict.fromkeys(t.output for t in self.tests if t.status == "skipped"):
            names = [t.name for t in self.tests if t.status == "skipped" and t.output == reason]
            lines.append(f"Skipped on this machine, not counted ({reason}): {'; '.join(names)}")
        return lines + (["", "Notes:", self.output] if self.output else [])

    def feedback_html(self, book_url: str | None = None) -> str:
        """What :meth:`feedback_text` says, as a page: each failed test with what it called, what was expected
        and what came back, and a link to the section of the book (published at ``book_url``) that teaches it.
        It holds the tests' names and messages only, never a hidden test's source."""
        book_url = published_book() if book_url is None else book_url
        rows, sections, untouched, number = [], [], self.not_implemented(), 0
        for subject, tests in self.by_subject():
            if subject in untouched:
                rows.append(f'<tr><th scope="row">{html.escape(subject)}: all {len(tests)} tests</th><td class="failed">'
                            f'failed</td><td>0 / {sum(t.max_score for t in tests):g}</td><td>nothing implemented yet '
                            "(it raises NotImplementedError)</td></tr>")
                number += len(tests)
                continue
            for test in tests:
                number, name = number + 1, html.escape(test.name)
                if test.status == "failed" and test.output in self.causes:
                    detail = '<a href="#causes">the cause above</a>'
                elif test.status == "failed":
                    detail = f'<a href="#test-{number}">what went wrong</a>'
                    sections.append(f'<section aria-labelledby="test-{number}">\n<h3 id="test-{number}">{name}</h3>\n'
                                    f'{explained(test.output)}{book_link(test, book_url)}</section>')
                else:
                    detail = html.escape(test.output)
                rows.append(f'<tr><th scope="row">{name}</th><td class="{test.status}">{test.status}</td>'
                            f'<td>{test.score:g} / {test.max_score:g}</td><td>{detail}</td></tr>')
        title = html.escape(f"{self.assignment}: feedback for {self.student}")
        body = [f"<h1>{title}</h1>"] + ([f"<p>Graded file: {html.escape(self.notebook)}</p>"] if self.notebook else [])
        body.append(f"<p>Score: <strong>{self.score:g} / {self.max_score:g}</strong> "
                    f"({sum(t.status == 'passed' for t in self.graded)} of {len(self.graded)} tests passed)</p>")
        if self.causes:
            heading, *causes = self.causes_text()
            body += [f'<h2 id="causes">{html.escape(heading.rstrip(":"))}</h2>',
                     f"<pre>{html.escape(chr(10).join(causes).rstrip())}</pre>"]
        body += ["<h2>Tests</h2>", '<table>\n<thead><tr><th scope="col">Test</th><th scope="col">Result</th>'
                 '<th scope="col">Points</th><th scope="col">Details</th></tr></thead>\n<tbody>\n' + "\n".join(rows)
                 + "\n</tbody>\n</table>"]
        if sections:
            body += ["<h2>What went wrong</h2>", *sections]
        if self.closing_text():
            body += ["<h2>Not counted here, and notes</h2>",
                     f"<pre>{html.escape(chr(10).join(self.closing_text()).strip())}</pre>"]
        return page(title, "\n".join(body))

    def write(self, out: Path) -> None:
        """``results.json``, ``feedback.txt`` and ``feedback.html`` in ``out/<student>/<assignment>/``, each
        replaced atomically."""
        folder = result_folder(out, self.student, self.assignment)
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / RESULTS, json.dumps(self.to_gradescope_dict(), indent=2, ensure_ascii=False))
        write_atomic(folder / FEEDBACK, self.feedback_text())
        write_atomic(folder / FEEDBACK_HTML, self.feedback_html())

    @classmethod
    def read(cls, path: Path) -> "SubmissionResult":
        return cls.from_gradescope_dict(json.loads(path.read_text()))


class LayoutError(RuntimeError):
    """An output folder whose results cannot be read without losing one."""


def in_notebook_order(tests: list[TestResult], defined: dict[str, int]) -> list[TestResult]:
    """``tests`` in the order the notebook defines what they test (the name before a test's colon, such as
    ``corr2d: padding 1``), each function's tests in the suite's order; tests of names it lacks come last."""
    return sorted(tests, key=lambda test: defined.get(test.name.split(":")[0].split(".")[0].strip(), math.inf))


def result_folder(out: Path, student: str, assignment: str) -> Path:
    return out / student / assignment


def read_all(out: Path) -> list[SubmissionResult]:
    """Every result in ``out``, whatever the assignment."""
    return [SubmissionResult.read(path) for path in sorted(out.glob(f"*/*/{RESULTS}"))]


def upgrade_layout(out: Path) -> list[str]:
    """Move results of the old layout (``OUT/<student>/results.json``, one assignment per folder) to
    ``OUT/<student>/<assignment>/``, as each file's own ``extra_data`` says; returns what was moved.

    Raises :class:`LayoutError` for a file that cannot be read or whose place is taken: nothing is dropped.
    """
    moved = []
    for path in sorted(out.glob(f"*/{RESULTS}")):
        try:
            result = SubmissionResult.read(path)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise LayoutError(f"{path} (results of an older grader, outside nbgrader's <student>/<assignment>/ "
                              f"layout) cannot be read ({type(error).__name__}: {error}); move or delete it") from None
        target = result_folder(out, path.parent.name, result.assignment)
        if (target / RESULTS).exists():
            raise LayoutError(f"{path} (an older grader's layout) and {target / RESULTS} both hold "
                              f"{result.student}'s {result.assignment} results; delete the one you do not want")
        target.mkdir(parents=True, exist_ok=True)
        for name in (RESULTS, FEEDBACK, FEEDBACK_HTML):
            if (path.parent / name).exists():
                os.replace(path.parent / name, target / name)
        moved.append(f"moved {path} to {target}/ (nbgrader's <student>/<assignment>/ layout)")
    return moved


def grades_csv(results: list[SubmissionResult], missing: list[str] = (), assignment: str = "") -> str:
    """A row per result, and one per student of the roster who submitted nothing to ``assignment`` (``missing``:
    status "no submission", 0 points) and has no result kept from an earlier run."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    top = max((r.max_score for r in results if r.assignment == assignment and r.status == GRADED), default="")
    rows = [r.csv_row() for r in results] + [
        {"student": student, "assignment": assignment, "score": 0, "max_score": top, "status": "no submission",
         "tests_passed": 0, "tests_failed": 0, "execution_time": 0, "late": "", "in_last_run": "yes"}
        for student in missing if (student, assignment) not in {(r.student, r.assignment) for r in results}]
    for row in sorted(rows, key=lambda r: (r["assignment"], r["student"])):
        writer.writerow(row)
    return buffer.getvalue()


def mark_absent(out: Path, assignment: str, students: set[str]) -> list[str]:
    """Mark ``assignment``'s results in ``out`` of students not among ``students`` (those of the folder graded
    now) as absent, and unmark those who are back; returns the absent students."""
    absent = []
    for path in sorted(out.glob(f"*/{assignment}/{RESULTS}")):
        result = SubmissionResult.read(path)
        if result.assignment != assignment:
            continue
        if result.absent != (result.student not in students):
            result.absent = not result.absent
            result.write(out)
        if result.absent:
            absent.append(result.student)
    return absent


@functools.cache  # read once per process, not once per result written
def published_book(config: Path = Path(__file__).resolve().parent.parent / "_config.yml") -> str:
    """Where the course book is published: ``$COURSE_BOOK_URL``, else the GitHub Pages address of the checkout's
    ``repository: url`` (``_config.yml``), else "" (feedback then names the book's sections without links)."""
    if os.environ.get("COURSE_BOOK_URL"):
        return os.environ["COURSE_BOOK_URL"].rstrip("/")
    try:
        text = config.read_text()
    except OSError:
        return ""
    found = re.search(r"^repository:\s*$(?:\n[ \t]+.*$)*?\n[ \t]+url:\s*https://github\.com/([\w.-]+)/([\w.-]+?)"
                      r"(?:\.git)?/?\s*$", text, re.MULTILINE)
    return f"https://{found[1]}.github.io/{found[2]}" if found else ""


def explained(message: str) -> str:
    """A failure message (``call: why``, ``expected: ...``, ``got: ...``, a ``likely mistake: ...`` line:
    autograder/expect.py) as a list; only a call is shown as what was called, never a verdict or an exception."""
    message, _, likely = message.partition("\n" + LIKELY)
    head, _, rest = message.partition("\nexpected: ")
    expected, _, got = rest.partition("\ngot: ")
    if not rest:
        head, _, got = message.partition("\ngot: ")
    first, _, more = head.partition("\n")
    called, _, verdict = first.rpartition(": ")
    if first.endswith(" raised an exception:"):
        called, verdict = first.removesuffix(" raised an exception:"), "it raised an exception:"
    elif not called:
        verdict = first
    parts = [("What was called", called), ("What went wrong", "\n".join(filter(None, [verdict, more]))),
             ("What was expected", expected), ("What came back", got), ("What it looks like", likely)]
    return "<dl>\n" + "".join(f"<dt>{label}</dt><dd><pre>{html.escape(text)}</pre></dd>\n"
                               for label, text in parts if text) + "</dl>\n"


def book_section(test: TestResult, book_url: str) -> str:
    """Where the book teaches what ``test`` checks (its suite's ``book`` marker, or the misconception's), as
    plain text: “section”, chapter N, and its address when the book's is known."""
    book = test.extra_data.get("book")
    if not isinstance(book, dict):
        return ""
    where = f"“{book.get('section')}”, chapter {book.get('chapter')}"
    return f"{where}, {book_url}/{book.get('path')}" if book_url else where


def book_link(test: TestResult, book_url: str) -> str:
    """:func:`book_section` as a sentence of HTML, with a link."""
    book = test.extra_data.get("book")
    if not isinstance(book, dict):
        return ""
    where = f"“{html.escape(str(book.get('section')))}”, chapter {html.escape(str(book.get('chapter')))}"
    if book_url:
        where = f'<a href="{html.escape(book_url)}/{html.escape(str(book.get("path")))}">{where}</a>'
    return f"<p>The book explains this: {where}.</p>\n"


STYLE = """body { font-family: system-ui, sans-serif; color: #1a1a1a; background: #fff; margin: 2rem auto;
max-width: 60rem; padding: 0 1rem; line-height: 1.5 }
table { border-collapse: collapse; width: 100% } th, td { border: 1px solid #767676; padding: .3rem .5rem;
text-align: left; vertical-align: top } thead th { background: #f0f0f0 }
.passed { color: #1a6b2f } .failed { color: #a4161a; font-weight: bold } .skipped { color: #595959 }
pre { white-space: pre-wrap; background: #f6f6f6; padding: .5rem; margin: 0 } a { color: #0b57d0 }
dt { font-weight: bold } img { max-width: 100% }"""


def page(title: str, body: str) -> str:
    """A complete, self-contained HTML page (no script, no request to any server)."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{title}</title>\n'
            f"<style>\n{STYLE}\n</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path`` and rename it over: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise

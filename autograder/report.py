"""``python -m autograder report OUT``: one page for the instructor on everything graded into OUT.

Per assignment: the scores' histogram, each function's and each test's pass rate, what to re-teach (the failures
grouped by the misconception they show and by the book's section that teaches what failed), the most common failure
messages and the slowest submissions. Scores count only the results of the notebooks graded in the latest run: the
others (not graded, and a student no longer in the class folder) are listed apart, never counted as 0; a function a
student has not written yet (it raises NotImplementedError) counts as not attempted, not as a mistake. Each chart is drawn with matplotlib and embedded in the page as a PNG with a text alternative that
gives its numbers, and the same numbers are in tables: the page is one file that works offline and with a screen
reader. A results.json that cannot be read is left out, and the command says which.
"""
from __future__ import annotations

import base64
import html
import io
import statistics
import sys
from collections import Counter
from pathlib import Path

from matplotlib.figure import Figure

from autograder import arguments
from autograder.results import GRADED, RESULTS, SubmissionResult, page, write_atomic

MESSAGES, SLOWEST = 10, 10  # rows of those tables


def main(argv: list[str] | None = None) -> int:
    p = arguments.Parser("report", epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("out", type=Path, help="a folder `python -m autograder grade` wrote results into")
    p.add_argument("--html", type=arguments.file("report.html"), help="where the page goes (default: OUT/report.html)")
    args = p.parse_args(argv)
    if not args.out.is_dir():
        p.error(f"{args.out} is not a folder")
    results, unreadable = [], []
    for path in sorted(args.out.glob(f"*/*/{RESULTS}")):
        try:
            results.append(SubmissionResult.read(path))
        except (OSError, ValueError, KeyError, TypeError) as error:
            unreadable.append(f"{path} ({type(error).__name__}: {error})")
    if not results:
        p.error(f"{args.out} holds no readable results (<student>/<assignment>/{RESULTS})")
    for problem in unreadable:
        print(f"left out of the report, cannot be read: {problem}", file=sys.stderr)
    target = args.html or args.out / "report.html"
    write_atomic(target, report(results, args.out))
    assignments = sorted({r.assignment for r in results})
    print(f"report on {len(results)} results ({', '.join(assignments)}) written to {target}")
    return 0


def report(results: list[SubmissionResult], out: Path) -> str:
    assignments = sorted({r.assignment for r in results})
    title = f"Grading report: {', '.join(assignments)}"
    sections = [assignment_section(name, [r for r in results if r.assignment == name]) for name in assignments]
    intro = (f"<p>{len(results)} results in <code>{html.escape(str(out))}</code>. Each chart is followed by a table "
             "of the same numbers.</p>")
    return page(html.escape(title), "\n".join([f"<h1>{html.escape(title)}</h1>", intro, *sections]))


def assignment_section(assignment: str, everyone: list[SubmissionResult]) -> str:
    name = html.escape(assignment)
    results = [r for r in everyone if r.status == GRADED and not r.absent]
    apart = not_counted(assignment, [r for r in everyone if r not in results])
    if not results:
        return "\n".join([f'<section aria-labelledby="{name}">', f'<h2 id="{name}">{name}</h2>',
                          "<p>No submission was graded.</p>", apart, "</section>"])
    scores = [r.score for r in results]
    top = max(r.max_score for r in results)
    summary = (f"<p>{len(results)} graded submissions; score out of {top:g}: mean {statistics.mean(scores):.1f}, "
               f"median {statistics.median(scores):g}, lowest {min(scores):g}, highest {max(scores):g}.</p>")
    return "\n".join([f'<section aria-labelledby="{name}">', f'<h2 id="{name}">{name}</h2>', summary, apart,
                      histogram(assignment, scores, top), pass_rates(assignment, results),
                      reteach(assignment, results), common_failures(assignment, results),
                      slowest(assignment, results), "</section>"])


def not_counted(assignment: str, results: list[SubmissionResult]) -> str:
    """The results left out of the scores: not graded (with why), or of a student no longer in the folder."""
    if not results:
        return ""
    rows = [(r.student, "no longer in the class folder (kept from an earlier run)" if r.absent else r.status,
             gist(r.causes[0]) if r.causes and r.status != GRADED else "") for r in results]
    return "<h3>Not counted in the scores</h3>\n" + table(
        f"{assignment}: {len(rows)} results not counted", ["Student", "Why", "Details"], sorted(rows))


def attempted_failures(results: list[SubmissionResult]):
    """(result, test) for each failed test of a function its student has written (not NotImplementedError)."""
    for result in results:
        untouched = result.not_implemented()
        for test in result.tests:
            if test.status == "failed" and test.name.split(":")[0].strip() not in untouched:
                yield result, test


def reteach(assignment: str, results: list[SubmissionResult]) -> str:
    """The failures grouped by the misconception the grader recognised in them, and by the book's section that
    teaches what failed: the students each concerns, and how many did not attempt each function."""
    mistakes: dict[str, set] = {}
    sections: dict[str, set] = {}
    for result, test in attempted_failures(results):
        if test.extra_data.get("misconception"):
            mistakes.setdefault(f"{test.name.split(':')[0]}: {test.extra_data['misconception']}",
                                set()).add(result.student)
        book = test.extra_data.get("book")
        where = f"“{book['section']}” (chapter {book['chapter']})" if isinstance(book, dict) else "(no section)"
        sections.setdefault(where, set()).add(result.student)
    untried = Counter(subject for r in results for subject in r.not_implemented())
    parts = ["<h3>What to re-teach</h3>"]
    parts.append(table(f"{assignment}: misconceptions recognised in the failures, most frequent first",
                       ["Function: misconception", "Submissions", "Students"],
                       [(m, len(s), ", ".join(sorted(s))) for m, s in sorted(mistakes.items(), key=lambda i: -len(i[1]))])
                 if mistakes else "<p>No failure matched a known misconception.</p>\n")
    parts.append(table(f"{assignment}: submissions with a failure, by the book section that teaches it",
                       ["Book section", "Submissions"],
                       [(where, len(s)) for where, s in sorted(sections.items(), key=lambda i: -len(i[1]))])
                 if sections else "<p>No attempted function failed a test.</p>\n")
    if untried:
        parts.append(table(f"{assignment}: functions not attempted (they still raise NotImplementedError)",
                           ["Function", "Submissions"], sorted(untried.items())))
    return "\n".join(parts)


def histogram(assignment: str, scores: list[float], top: float) -> str:
    counts = Counter(scores)
    fig = Figure(figsize=(7, 2.8))
    ax = fig.subplots()
    ax.bar(list(counts), list(counts.values()), width=max(top / 60, 0.8), color="#1f5fa8")
    ax.set(xlabel=f"score (out of {top:g})", ylabel="submissions", xlim=(-1, top + 1),
           title=f"{assignment}: scores")
    ax.yaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    alt = (f"Histogram of {len(scores)} {assignment} scores out of {top:g}: "
           + "; ".join(f"{score:g} points: {n}" for score, n in sorted(counts.items(), reverse=True)) + ".")
    rows = [(f"{score:g}", n) for score, n in sorted(counts.items(), reverse=True)]
    return ("<h3>Scores</h3>\n" + figure(fig, alt)
            + table(f"{assignment}: submissions per score", ["Score", "Submissions"], rows))


def pass_rates(assignment: str, results: list[SubmissionResult]) -> str:
    """Each test's share of passes among the submissions it graded (a test skipped everywhere is listed apart)."""
    tally: dict[str, Counter] = {}
    for result in results:
        for test in result.tests:
            tally.setdefault(test.name, Counter())[test.status] += 1
    rates = sorted((c["passed"] / (c["passed"] + c["failed"]), name, c)
                   for name, c in tally.items() if c["passed"] + c["failed"])
    functions: dict[str, Counter] = {}
    for _, name, c in rates:
        functions.setdefault(name.split(":")[0].strip(), Counter()).update(c)
    shares = sorted((c["passed"] / (c["passed"] + c["failed"]), name) for name, c in functions.items())
    fig = Figure(figsize=(8, 0.45 * len(shares) + 1.4))  # one bar per function: labels at a readable size
    ax = fig.subplots()
    ax.barh(range(len(shares)), [100 * rate for rate, _ in shares], color="#1f5fa8")
    ax.set_yticks(range(len(shares)), [name for _, name in shares], fontsize=11)
    ax.invert_yaxis()
    ax.set(xlabel="tests passed, over all submissions (%)", xlim=(0, 100))
    ax.set_title(f"{assignment}: pass rate per function", fontsize=12)
    fig.tight_layout()
    hardest = [f"{name} ({rate:.0%})" for rate, name, _ in rates if rate < 1][:5]
    alt = (f"Bar chart of the share of tests passed for each of {assignment}'s {len(shares)} functions, lowest "
           f"first: {'; '.join(f'{name} {rate:.0%}' for rate, name in shares)}. The table below gives each of its "
           f"{len(rates)} graded tests" + (f"; the lowest: {'; '.join(hardest)}." if hardest else "."))
    rows = [(name, c["passed"], c["failed"], c["skipped"], f"{rate:.0%}") for rate, name, c in rates]
    rows += [(name, 0, 0, c["skipped"], "not graded here") for name, c in sorted(tally.items())
             if not c["passed"] + c["failed"]]
    return ("<h3>Pass rate per test</h3>\n" + figure(fig, alt)
            + table(f"{assignment}: pass rate per test, lowest first", ["Test", "Passed", "Failed", "Skipped",
                                                                         "Pass rate"], rows))


def common_failures(assignment: str, results: list[SubmissionResult]) -> str:
    """The failure messages met most often (in short: :func:`gist`), with the tests that gave them."""
    failures = [(gist(test.output), test.name, result.student) for result, test in attempted_failures(results)]
    if not failures:
        return "<h3>Most common failure messages</h3>\n<p>No test failed.</p>\n"
    counts = Counter(message for message, _, _ in failures)
    rows = []
    for message, n in counts.most_common(MESSAGES):
        tests = sorted({name for m, name, _ in failures if m == message})
        students = {student for m, _, student in failures if m == message}
        rows.append((message, n, len(students), "; ".join(tests[:3]) + (f"; and {len(tests) - 3} more"
                                                                         if len(tests) > 3 else "")))
    return "<h3>Most common failure messages</h3>\n" + table(
        f"{assignment}: the {len(rows)} most common failure messages", ["Message", "Failed tests", "Submissions",
                                                                          "Tests"], rows)


def gist(message: str) -> str:
    """A failure message in one line: its first line, and for an exception its last line (type and message)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()] or ["(no message)"]
    return f"{lines[0]} {lines[-1]}" if lines[0].endswith("raised an exception:") and len(lines) > 1 else lines[0]


def slowest(assignment: str, results: list[SubmissionResult]) -> str:
    ranked = sorted(results, key=lambda r: r.execution_time, reverse=True)[:SLOWEST]
    fig = Figure(figsize=(7, 0.3 * len(ranked) + 1.2))
    ax = fig.subplots()
    ax.barh(range(len(ranked)), [r.execution_time for r in ranked], color="#1f5fa8")
    ax.set_yticks(range(len(ranked)), [r.student for r in ranked], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="grading time (s)", title=f"{assignment}: slowest submissions")
    fig.tight_layout()
    alt = (f"Bar chart of the grading time of {assignment}'s {len(ranked)} slowest submissions: "
           + "; ".join(f"{r.student} {r.execution_time:.1f} s" for r in ranked) + ".")
    rows = [(r.student, f"{r.execution_time:.1f}", f"{r.score:g} / {r.max_score:g}") for r in ranked]
    return ("<h3>Slowest submissions</h3>\n" + figure(fig, alt)
            + table(f"{assignment}: the {len(ranked)} slowest submissions", ["Student", "Grading time (s)", "Score"],
                    rows))


def figure(fig: Figure, alt: str) -> str:
    """``fig`` as an embedded PNG, its ``alt`` the chart's numbers in words."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<figure>\n<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">\n</figure>\n'


def table(caption: str, header: list[str], rows: list[tuple]) -> str:
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return (f"<table>\n<caption>{html.escape(caption)}</caption>\n<thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n{body}\n</tbody>\n</table>\n")

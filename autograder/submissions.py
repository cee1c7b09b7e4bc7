"""Find the notebooks to grade, in one of the layouts a course has, and say what happens to every other file.

- nbgrader's ``SUBMITTED/<student>/<assignment>/<assignment>.ipynb`` (``nbgrader collect``): the folder's name
  is the student id;
- an LMS download, flat (Canvas, Blackboard) or a folder per student (Moodle), unpacked or as its ``.zip``: the
  student id is read from each file's path by the LMS's pattern (:data:`LMS`), a regular expression with
  nbgrader's named groups (``student_id``, ``file_id``; ``late``, ``timestamp`` where the LMS writes them);
- a flat folder of notebooks, ``SUBMITTED/<student>.ipynb`` (the file's name is the id);
- one notebook, ``<student>.ipynb``.

With a roster (a CSV with an ``id`` column, as ``nbgrader db student import`` reads), each submission is filed
under the roster's id: it is matched by that id, or by the name the LMS wrote (``lastfirst`` for Canvas, "First
Last" for Moodle, the user name for Blackboard); the roster's students without a submission are listed as missing,
files that match no student as unmatched.
"""
from __future__ import annotations

import ast
import csv
import json
import re
import shutil
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
SHOWN = 12  # entries of a folder listed when nothing in it can be graded
MAX_NOTEBOOK = 20 * 2**20  # as autograder.notebook.MAX_BYTES: larger notebooks are the grader's to refuse
MAX_UNZIPPED = 4 * 2**30   # a download larger than this unpacked is refused before anything is written
LINK = "a symbolic link: not followed (its files lie elsewhere)"
# Each LMS's download, as a path relative to SUBMITTED (Moodle's folder per student, or its flat variant).
LMS = {
    "canvas": r"(?P<student_id>[^_/]+)_(?:(?P<late>LATE)_)?(?P<user_id>\d+)_(?P<submission_id>\d+)_(?P<file_id>[^/]+)",
    "moodle": r"(?P<student_id>[^_/]+)_(?P<user_id>\d+)_assignsubmission_(?:file|onlinetext)_/?(?P<file_id>[^/]+)",
    "blackboard": r"(?P<assignment>[^/]*?)_(?P<student_id>[^_/]+)_attempt_(?P<timestamp>\d{4}(?:-\d\d){5})"
                  r"(?:_(?P<late>LATE))?(?:_(?P<file_id>[^/]+)|\.txt)",
}
LMS_EXAMPLES = {"canvas": "smithjane_LATE_12345_6789012_conv_basics.ipynb (LATE when late)",
                "moodle": "Jane Smith_12345_assignsubmission_file_/conv_basics.ipynb",
                "blackboard": "conv_basics_jsmith_attempt_2024-10-01-09-30-00_conv_basics.ipynb (and a .txt receipt)"}


def layouts(submitted: Path, assignment: str) -> str:
    rows = [(f"{submitted}/<student>/{assignment}/{assignment}.ipynb", "nbgrader's layout (nbgrader collect)"),
            (f"{submitted}/<LMS file names>", "Canvas's, Moodle's or Blackboard's download, or its .zip (--lms)"),
            (f"{submitted}/<student>.ipynb", "a flat folder of notebooks, the file's name the id"),
            ("<student>.ipynb", "one notebook, given instead of a folder")]
    width = max(len(path) for path, _ in rows)
    return "\n".join(f"  {path:<{width}}  {what}" for path, what in rows)


def shown(name: str | Path) -> str:
    """``name`` as it may be printed: a control character (a newline in a file's name) is escaped, so a name can
    never start a line of its own in the summary, grades.csv or the report."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(name))


@dataclass(frozen=True)
class Refusal:
    """Why a student's notebook is not graded; a result saying so is written for the student."""
    status: str   # a few words for grades.csv: "several notebooks", "no notebook"
    reason: str   # one line for the instructor and the student
    notebook: Path | None = None  # the notebook refused, where it was read (another assignment's)


@dataclass
class Found:
    layout: str
    notebooks: dict[str, Path] = field(default_factory=dict)  # student -> the notebook to grade
    refused: dict[str, Refusal] = field(default_factory=dict)  # student -> why their notebook is not graded
    unusable: dict[str, str] = field(default_factory=dict)     # a file no result can be filed under -> why
    ignored: dict[str, str] = field(default_factory=dict)      # a file not graded by rule -> why (said, not counted)
    late: set[str] = field(default_factory=set)                # students whose graded file the LMS marked late
    missing: list[str] = field(default_factory=list)           # the roster's students without a submission
    unpacked: Path | None = None                               # the temporary folder a .zip was unpacked into

    @property
    def students(self) -> list[str]:
        return sorted({*self.notebooks, *self.refused})

    def submitted(self, student: str) -> Path | None:
        """The notebook ``student`` submitted: the one graded, or one refused as another assignment's."""
        refused = self.refused.get(student)
        return self.notebooks.get(student) or (refused.notebook if refused else None)

    def keep(self, student: str) -> None:
        """Forget every submission but ``student``'s (who is one of :attr:`students`)."""
        self.notebooks = {s: n for s, n in self.notebooks.items() if s == student}
        self.refused = {s: r for s, r in self.refused.items() if s == student}
        self.late &= {student}

    def close(self) -> None:
        if self.unpacked:
            shutil.rmtree(self.unpacked, ignore_errors=True)


class NothingToGrade(ValueError):
    """No submission of the assignment in a layout the grader knows: the message shows both."""


# --- the roster ---------------------------------------------------------------------------------------------------

def key(text: str) -> str:
    """A name as the LMSs and rosters compare: lower case, accents dropped, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower())


def read_roster(path: Path) -> dict[str, set[str]]:
    """A roster CSV (``id`` column; ``first_name``, ``last_name``, ``email`` if there): id -> the keys it is
    known by. Raises ValueError with one line saying what is wrong."""
    try:
        rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"cannot read the roster {path}: {error}") from None
    if not rows or "id" not in rows[0]:
        raise ValueError(f"the roster {path} has no 'id' column (nbgrader's `db student import` format: "
                         "id,first_name,last_name,email)")
    roster = {}
    for number, row in enumerate(rows, 2):
        student = (row.get("id") or "").strip()
        if not STUDENT_ID.match(student):
            raise ValueError(f"the roster {path}, line {number}: {shown(student)!r} is not usable as a student id "
                             "(letters, digits and ._@+- only, starting with a letter or digit)")
        first, last = (row.get("first_name") or "").strip(), (row.get("last_name") or "").strip()
        email = (row.get("email") or "").split("@")[0]
        roster[student] = {k for k in (key(student), key(last + first), key(first + last), key(email)) if k}
    return roster


def roster_id(roster: dict[str, set[str]], names: list[str]) -> tuple[str, str]:
    """(the roster's id that ``names``, what a file's name says of its student, match, "") or ("", why none)."""
    keys = {key(name) for name in names if key(name)}
    matched = [student for student, known in roster.items() if keys & known]
    if len(matched) == 1:
        return matched[0], ""
    return "", ("matches no student of the roster" if not matched else
                f"matches {len(matched)} students of the roster: {', '.join(matched)}")


# --- finding the submissions ------------------------------------------------------------------------------------

@dataclass
class Claim:
    """One file of an LMS download or flat folder, and the student its name says it is from."""
    path: Path
    name: str         # as shown: its path relative to SUBMITTED
    names: list[str]  # what the name says of the student (the id first, then the LMS's user id)
    file_id: str      # the file's own name, as the student uploaded it ("" for a receipt)
    attempt: str = ""  # orders a student's attempts, where the LMS writes it
    late: bool = False


def find_submissions(submitted: Path, assignment: str, lms: str = "auto",
                     roster: dict[str, set[str]] | None = None) -> Found:
    """Every student who submitted ``assignment`` under ``submitted`` (a folder, a .zip or one ``.ipynb``), and
    what is done with every other file there.

    nbgrader's layout is used when some ``<student>/<assignment>/`` folder exists. Otherwise each file's path is
    read with ``lms``'s pattern (``auto``: the LMS whose pattern the most files match, or none), else its stem is
    the id. Of a student's files, the latest attempt's notebook named like the assignment is graded, else its only
    notebook; none, or several others, is a :class:`Refusal`.
    """
    if submitted.is_file() and submitted.suffix == ".zip":
        unpacked, inside = unpack(submitted)
        try:
            found = find_submissions(inside, assignment, lms, roster)
        except NothingToGrade as error:
            shutil.rmtree(unpacked, ignore_errors=True)
            raise NothingToGrade(str(error).replace(str(inside), f"{submitted} (unpacked)")) from None
        found.unpacked, found.layout = unpacked, f"{found.layout}, unpacked from {submitted.name}"
        return found
    if submitted.is_file():
        found = Found("one notebook")
        on_roster_add(found, submitted.stem, submitted, roster)
        return finish(found, roster)
    entries = sorted(p for p in submitted.iterdir() if not p.name.startswith("."))
    students = [p for p in entries if p.is_dir() and not p.is_symlink() and (p / assignment).is_dir()]
    if students:
        found = Found("nbgrader's layout")
        for entry in entries:
            if entry not in students:
                found.ignored[shown(entry.name)] = (LINK if entry.is_symlink() else
                                                    f"not in a <student>/{assignment}/ folder" if entry.is_file()
                                                    else f"holds no {assignment}/ folder (another assignment's)")
        for student in students:
            on_roster_add(found, student.name, choose(student / assignment, assignment), roster)
        return finish(found, roster)
    files = sorted(p for p in submitted.rglob("*") if not any(part.startswith(".") for part in
                                                               p.relative_to(submitted).parts)
                   and (p.is_symlink() or not p.is_dir()) and not linked_folder(submitted, p))
    claims, found = read_names(submitted, files, lms)
    one_students = submitted.name == assignment and (submitted / f"{assignment}.ipynb").is_file()
    if one_students or not any(c.file_id.endswith(".ipynb") for c in claims):
        raise NothingToGrade(f"found no {assignment} submission in {submitted}; expected one of these layouts:\n"
                             f"{layouts(submitted, assignment)}\n{describe(submitted, assignment)}")
    by_student: dict[str, list[Claim]] = {}
    for claim in claims:
        if roster is None:
            by_student.setdefault(claim.names[0], []).append(claim)
            continue
        student, why = roster_id(roster, claim.names)
        if student:
            by_student.setdefault(student, []).append(claim)
        else:
            found.unusable[claim.name] = why
    for student, mine in sorted(by_student.items()):
        add(found, student, *pick(found, mine, assignment))
    return finish(found, roster)


def read_names(submitted: Path, files: list[Path], lms: str) -> tuple[list[Claim], Found]:
    """Each file's claim to a student: by the LMS's pattern where there is one, else by its stem."""
    names = [p.relative_to(submitted).as_posix() for p in files]
    if lms == "auto":
        counts = {name: sum(bool(re.fullmatch(LMS[name], n)) for n in names) for name in LMS}
        best = max(counts, key=counts.get)
        lms = best if counts[best] else "none"
    pattern = LMS.get(lms, lms if lms != "none" else None)
    found = Found(f"{lms.capitalize()}'s download" if lms in LMS else
                  "a flat folder of notebooks" if pattern is None else "files named by --lms-pattern")
    claims = []
    for path, name in zip(files, names):
        if path.is_symlink() or not path.is_file():
            found.unusable[shown(name)] = LINK if path.is_symlink() else "a special file: not read"
            continue
        if pattern is None:
            if "/" in name:
                found.unusable[shown(name)] = "in a folder of a flat folder of notebooks: not graded"
            else:
                claims.append(Claim(path, shown(name), [path.stem], path.name))
            continue
        match = re.fullmatch(pattern, name)
        if not match:
            found.unusable[shown(name)] = f"its name is not one {found.layout} gives (see --help): not graded"
            continue
        fields = match.groupdict()
        claims.append(Claim(path, shown(name), [as_id(fields.get("student_id") or ""), fields.get("user_id") or ""],
                            fields.get("file_id") or "", fields.get("timestamp") or fields.get("submission_id") or "",
                            bool(fields.get("late"))))
    return claims, found


def as_id(name: str) -> str:
    """A name an LMS wrote as a student id: "José Núñez" -> Jose_Nunez."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9._@+-]+", "_", ascii_name).strip("._@+-")


def pick(found: Found, claims: list[Claim], assignment: str) -> tuple[Path | Refusal, bool]:
    """The notebook to grade among one student's files, and whether the LMS marked it late (the others are said
    in ``found.ignored``)."""
    notebooks = [c for c in claims if c.file_id.endswith(".ipynb")]
    latest = max((c.attempt for c in notebooks), default="")
    for claim in claims:
        if not claim.file_id:
            found.ignored[claim.name] = "the LMS's receipt of an attempt, not a submission"
        elif claim not in notebooks:
            if notebooks:
                found.ignored[claim.name] = "not a notebook, beside this student's notebook"
        elif claim.attempt != latest:
            found.ignored[claim.name] = f"an earlier attempt ({claim.attempt}); the latest, {latest}, is graded"
    notebooks = [c for c in notebooks if c.attempt == latest]
    if not notebooks:
        others = [c.name for c in claims if c.file_id]
        return Refusal("no notebook", f"{', '.join(others)} {'is' if len(others) == 1 else 'are'} not a Jupyter "
                                      "notebook (.ipynb): submit the .ipynb file" if others else
                       "only the LMS's receipt, no file"), False
    named = [c for c in notebooks if re.sub(r"-\d+$", "", Path(c.file_id).stem) == assignment]
    chosen = named if len(named) == 1 else notebooks
    if len(chosen) > 1:
        return Refusal("several notebooks", f"{len(notebooks)} notebooks, none named {assignment}.ipynb: "
                       f"{', '.join(c.name for c in notebooks)}; keep one, or name it {assignment}.ipynb"), False
    for claim in notebooks:
        if claim is not chosen[0]:
            found.ignored[claim.name] = f"another notebook beside {chosen[0].name}, which is graded"
    return chosen[0].path, chosen[0].late


def add(found: Found, student: str, notebook: Path | Refusal, late: bool = False) -> None:
    if not STUDENT_ID.match(student):
        found.unusable[shown(student)] = (f"{shown(student)!r} is not usable as a student id (letters, digits and "
                                          "._@+- only, starting with a letter or digit): rename it")
    elif isinstance(notebook, Refusal):
        found.refused[student] = notebook
    else:
        found.notebooks[student] = notebook
        if late:
            found.late.add(student)


def on_roster_add(found: Found, student: str, notebook: Path | Refusal, roster: dict[str, set[str]] | None) -> None:
    """:func:`add` under the roster's id for ``student`` (a folder's or a file's name), when there is a roster."""
    if roster is not None:
        listed, why = roster_id(roster, [student])
        if not listed:
            found.unusable[shown(student)] = why
            return
        student = listed
    add(found, student, notebook)


def finish(found: Found, roster: dict[str, set[str]] | None) -> Found:
    if roster is not None:
        found.missing = sorted(set(roster) - set(found.students))
    return found


def unpack(archive: Path) -> tuple[Path, Path]:
    """``archive`` unpacked into a new temporary folder (the caller removes it: :meth:`Found.close`), and the
    folder in it that holds the submissions (the only folder at its top, unless a Moodle student's). Members
    with absolute paths or ``..``, and links, are left out; a download larger than :data:`MAX_UNZIPPED` unpacked
    is refused."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.infolist() if not m.is_dir()]
            if sum(m.file_size for m in members) > MAX_UNZIPPED:
                raise NothingToGrade(f"{archive} unpacks to more than {MAX_UNZIPPED // 2**30} GB: unpack it yourself")
            folder = Path(tempfile.mkdtemp(prefix="submitted-"))
            for member in members:
                name = member.filename
                if not member.flag_bits & 0x800:  # no UTF-8 flag: zipfile read it as cp437, as most zips write UTF-8
                    try:
                        name = name.encode("cp437").decode("utf-8")
                    except UnicodeError:
                        pass
                parts = Path(name).parts
                is_link = (member.external_attr >> 16) & 0o170000 == 0o120000
                if name.startswith("/") or ".." in parts or is_link or not parts:
                    continue
                target = folder.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(member) as source, open(target, "wb") as copy:
                    shutil.copyfileobj(source, copy)
    except (zipfile.BadZipFile, OSError) as error:
        raise NothingToGrade(f"{archive} cannot be unpacked: {error}") from None
    inside = [p for p in folder.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    one_folder = len(inside) == 1 and inside[0].is_dir() and "_assignsubmission_" not in inside[0].name
    return folder, inside[0] if one_folder else folder


def linked_folder(submitted: Path, path: Path) -> bool:
    """Whether a folder between ``submitted`` and ``path`` is a symbolic link (its files lie elsewhere)."""
    return any((submitted / parent).is_symlink() for parent in path.relative_to(submitted).parents[:-1])


def choose(folder: Path, assignment: str) -> Path | Refusal:
    """The notebook to grade in a student's assignment folder (``<student>/<assignment>/``, as messages say)."""
    where = Path(folder.parent.name) / folder.name
    if folder.is_symlink():
        return Refusal("a symbolic link", f"{shown(where)}/ is {LINK}; copy the notebook into it instead")
    expected = folder / f"{assignment}.ipynb"
    if expected.is_file():
        return expected
    notebooks = sorted(p.name for p in folder.glob("*.ipynb") if p.is_file())
    if len(notebooks) == 1:
        return folder / notebooks[0]
    if notebooks:
        return Refusal("several notebooks", f"{shown(where)}/ holds {len(notebooks)} notebooks, none named "
                       f"{assignment}.ipynb: {shown(', '.join(notebooks))}; keep one, or name it {assignment}.ipynb")
    files = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    return Refusal("no notebook", f"{shown(where)}/ holds no notebook (.ipynb)"
                   + (f"; it holds {shown(', '.join(files[:SHOWN]))}" if files else ": it is empty"))


def describe(submitted: Path, assignment: str) -> str:
    """What ``submitted`` holds, with a hint where it looks like a wrongly chosen folder."""
    entries = sorted(p for p in submitted.iterdir() if not p.name.startswith("."))
    if (submitted / assignment).is_dir():
        return (f"{submitted} holds {assignment}/, as one student's folder does: give the folder that holds every "
                f"student's folder ({submitted.parent}), or one notebook ({submitted / assignment / assignment}.ipynb)")
    if submitted.name == assignment and (submitted / f"{assignment}.ipynb").is_file():
        return (f"{submitted} holds {assignment}.ipynb, as one student's assignment folder does: give the folder "
                f"that holds every student's folder ({submitted.parent.parent}), or one notebook "
                f"({submitted / assignment}.ipynb)")
    if not entries:
        return f"{submitted} is empty"
    lines = [f"{submitted} holds:"]
    for entry in entries[:SHOWN]:
        if entry.is_symlink():
            lines.append(f"  {shown(entry.name)}   ({LINK})")
        elif entry.is_dir():
            inside = sorted(p.name + ("/" if p.is_dir() else "") for p in entry.iterdir() if not p.name.startswith("."))
            lines.append(f"  {shown(entry.name)}/   "
                         f"{shown(', '.join(inside[:4])) + (', ...' if len(inside) > 4 else '') or 'empty'}")
        else:
            lines.append(f"  {shown(entry.name)}")
    if len(entries) > SHOWN:
        lines.append(f"  ... and {len(entries) - SHOWN} more")
    return "\n".join(lines)


# --- a notebook of another assignment -----------------------------------------------------------------------------

def subjects(suites: Path, assignment: str) -> set[str]:
    """What ``assignment`` asks students to write: the names its hidden tests are about (the words before the
    colon of each test's docstring, such as ``corr2d`` in "corr2d: padding 1"), which are its nbgrader cell ids."""
    names = set()
    for path in (suites / assignment).glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                subject = (ast.get_docstring(node) or "").split(":")[0].split(".")[0].strip()
                if subject.isidentifier():
                    names.add(subject)
    return names


def words(path: Path) -> set[str] | None:
    """The nbgrader cell ids and the words of the code cells of the notebook at ``path``; None when it cannot be
    read as one (the grader then says why)."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_NOTEBOOK:
            return None
        cells = json.loads(path.read_bytes())["cells"]
        found = set()
        for cell in cells:
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            if cell.get("cell_type") == "code":
                found.update(re.findall(r"[A-Za-z_]\w*", source))
            found.add(str(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")))
        return found
    except Exception:  # noqa: BLE001 - any notebook that cannot be read this way is the grader's to report
        return None


def refuse_other_assignments(found: Found, suites: Path, assignment: str) -> str:
    """Refuse the notebooks that are not ``assignment``'s (none of the names it asks for appears in them), each
    naming the assignment it looks like. Returns that assignment when every notebook of a class (two or more) was
    refused and all look like the same one (the instructor gave the wrong assignment), else "": one notebook alone
    (nbgrader autograde's, Gradescope's) is its student's mistake, and its result says so."""
    known = {a.name: subjects(suites, a.name) for a in suites.iterdir() if a.is_dir() and list(a.glob("test_*.py"))}
    wanted, others = known.get(assignment, set()), set()
    for student, path in list(found.notebooks.items()):
        have = words(path)
        if have is None or not wanted or have & wanted:
            continue
        scores = {a: len(names & have) for a, names in known.items() if a != assignment}
        like = max(scores, key=scores.get, default="")
        like = like if scores.get(like) else ""
        others.add(like)
        del found.notebooks[student]
        found.late.discard(student)
        found.refused[student] = Refusal(
            "another assignment", f"this notebook is not {assignment}: it has none of {', '.join(sorted(wanted))}"
            + (f"; it looks like {like} ({', '.join(sorted(known[like] & have))})" if like else "")
            + f"; submit your {assignment} notebook", path)
    elsewhere = [r for r in found.refused.values() if r.status == "another assignment"]
    mistaken = len(elsewhere) > 1 and not found.notebooks and len(others) == 1 and "" not in others
    return others.pop() if mistaken else ""


def shard(students: list[str], k: int, n: int) -> list[str]:
    """The K-th of N disjoint slices (K from 1), stable under re-runs."""
    return [s for i, s in enumerate(sorted(students)) if i % n == k - 1]

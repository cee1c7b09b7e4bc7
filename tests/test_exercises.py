"""The nbgrader assignments: solutions/ (instructor notebooks) and exercises/ (generated student versions).

- exercises/ is exactly what `nbgrader generate_assignment` makes of solutions/ today;
- no solution code or marker reaches a student: not in exercises/, not in the built book;
- the solutions run top to bottom; the student versions fail only with NotImplementedError;
- both versions define the graded API with the same signatures;
- `nbgrader validate` passes the solved notebooks and fails the unsolved ones;
- the nbgrader metadata is sound, and every slow cell is tagged for the grader to skip.
"""
from __future__ import annotations

import ast
import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ASSIGNMENTS = ["conv_basics", "cnn_vs_fc", "receptive_fields"]
SKIP_TAG = "skip-in-grader"
MARKERS = ["BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"]

# The graded API: name -> [(argument, default or NO_DEFAULT)], for plain functions or a class's __init__.
NO_DEFAULT = object()
API = {
    "conv_basics": {
        "corr2d": [("X", NO_DEFAULT), ("K", NO_DEFAULT), ("padding", 0), ("stride", 1)],
        "conv_output_shape": [("input_size", NO_DEFAULT), ("kernel_size", NO_DEFAULT), ("padding", 0), ("stride", 1)],
        "corr2d_multi_in_out": [("X", NO_DEFAULT), ("K", NO_DEFAULT)],
        "pool2d": [("X", NO_DEFAULT), ("pool_size", NO_DEFAULT), ("mode", "max"), ("stride", None), ("padding", 0)],
        "Conv2D": [("kernel_size", NO_DEFAULT)],
    },
    "cnn_vs_fc": {
        "ConvNet": [],
        "FCNet": [("hidden", ...)],  # any default: the student picks it
        "train_one_epoch": [("model", NO_DEFAULT), ("loader", NO_DEFAULT), ("optimizer", NO_DEFAULT),
                            ("criterion", NO_DEFAULT), ("device", "cpu")],
        "evaluate": [("model", NO_DEFAULT), ("loader", NO_DEFAULT), ("criterion", NO_DEFAULT), ("device", "cpu")],
        "DesignNet": [],
    },
    "receptive_fields": {
        "receptive_field": [("layers", NO_DEFAULT)],
        "conv_transpose2d": [("X", NO_DEFAULT), ("K", NO_DEFAULT), ("stride", 1), ("padding", 0), ("dilation", 1),
                             ("output_padding", 0)],
        "conv2d_input_grad": [("grad_Y", NO_DEFAULT), ("K", NO_DEFAULT), ("input_size", NO_DEFAULT), ("stride", 1),
                              ("padding", 0), ("dilation", 1)],
        "overlap_counts": [("kernel_size", NO_DEFAULT), ("stride", NO_DEFAULT)],
    },
}


def solution_path(assignment: str) -> Path:
    return ROOT / "solutions" / assignment / f"{assignment}.ipynb"


def exercise_path(assignment: str) -> Path:
    return ROOT / "exercises" / assignment / f"{assignment}.ipynb"


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def is_test_cell(cell) -> bool:
    return bool(nbgrader(cell).get("grade")) and not nbgrader(cell).get("solution")


def solution_lines(assignment: str) -> list[str]:
    """Distinctive lines of the solution regions: stripped, at least 30 characters, not comments."""
    lines, inside = [], False
    for cell in read(solution_path(assignment)).cells:
        for line in cell.source.splitlines():
            stripped = line.strip()
            if "### BEGIN SOLUTION" in stripped:
                inside = True
            elif "### END SOLUTION" in stripped:
                inside = False
            elif inside and len(stripped) >= 30 and not stripped.startswith("#"):
                lines.append(stripped)
    return lines


def scratch_tree(base: Path, source: str, assignment: str) -> Path:
    """A copy of the folder <source>/<assignment>/ (the notebook and the files it reads, as nbgrader releases
    it) at base/<source>/<assignment>/; returns the notebook's path."""
    folder = base / source / assignment
    shutil.copytree(ROOT / source / assignment, folder)
    return folder / f"{assignment}.ipynb"


def execute(path: Path, allow_errors: bool = False) -> nbformat.NotebookNode:
    """Run a notebook with the venv's python3 kernel in its own folder; return it with outputs."""
    notebook = read(path)
    client = NotebookClient(notebook, kernel_name="python3", timeout=300, allow_errors=allow_errors,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return notebook


def errors(notebook) -> list[tuple[int, str, str]]:
    return [(index, output.get("ename", ""), output.get("evalue", ""))
            for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.output_type == "error"]


def validate(path: Path) -> str:
    """`nbgrader validate` as a student runs it, but for nbclient's wait for a cell's last output after its reply
    (4 s by default, an error when spent): six notebooks run at once here, and on a loaded machine a plot's output
    came later than that (CellTimeoutError at load 10), which says nothing about the notebook."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    run = subprocess.run([str(BIN / "nbgrader"), "validate", path.name, "--Execute.iopub_timeout=120"],
                         cwd=path.parent, env=env, capture_output=True, text=True, timeout=600)
    return run.stdout + run.stderr


# --- the slow part, once per module and in parallel: executions and validations --------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Executed notebooks and `nbgrader validate` reports, each in its own scratch copy:
    {("execute" | "validate", "solutions" | "exercises", assignment): notebook or report}."""
    base = tmp_path_factory.mktemp("runs")
    jobs = {}
    with ThreadPoolExecutor(max_workers=3) as pool:
        for assignment in ASSIGNMENTS:
            for source in ("solutions", "exercises"):
                run_copy = scratch_tree(base / "execute", source, assignment)
                jobs["execute", source, assignment] = pool.submit(execute, run_copy, source == "exercises")
                validate_copy = scratch_tree(base / "validate", source, assignment)
                jobs["validate", source, assignment] = pool.submit(validate, validate_copy)
        return {key: job.result() for key, job in jobs.items()}


# --- (1) exercises/ is nbgrader's output of solutions/ ----------------------------------------------------

def test_nbgrader_config_points_at_solutions_and_exercises():
    text = (ROOT / "nbgrader_config.py").read_text()
    assert re.search(r'c\.CourseDirectory\.source_directory\s*=\s*"solutions"', text)
    assert re.search(r'c\.CourseDirectory\.release_directory\s*=\s*"exercises"', text)
    assert "db_url" not in text, "the gradebook stays at nbgrader's default gradebook.db"


@pytest.mark.slow
def test_exercises_are_in_sync_with_solutions(generated):
    """Every assignment regenerated into a scratch release folder (and a scratch gradebook; conftest's
    ``generated``, once per session): the committed exercises/ must be byte for byte what nbgrader makes of
    solutions/ (run `make exercises` to fix). nbgrader 0.9's output is deterministic (two generations are
    identical), so this holds run after run."""
    release = generated.release
    assert generated.repository_after == generated.repository_before, (
        "nbgrader touched the repository's gradebook or log")
    made = sorted(p.relative_to(release) for p in release.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(ROOT / "exercises") for p in (ROOT / "exercises").rglob("*") if p.is_file())
    assert made == committed, f"exercises/ holds {committed}, nbgrader generates {made}"
    for relative in made:
        assert (release / relative).read_bytes() == (ROOT / "exercises" / relative).read_bytes(), (
            f"exercises/{relative} differs from what nbgrader generates from solutions/: run `make exercises`")


# --- (2) no solution reaches a student ----------------------------------------------------------------------

@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercises_hold_no_solution(assignment):
    text = exercise_path(assignment).read_text()
    for marker in MARKERS:
        assert marker not in text, f"exercises/{assignment} contains {marker!r}"
    code = "\n".join(cell.source for cell in read(exercise_path(assignment)).cells)
    lines = solution_lines(assignment)
    assert len(lines) >= 5, f"too few distinctive solution lines found in solutions/{assignment}: {lines}"
    leaked = [line for line in lines if line in code]
    assert not leaked, f"solution lines in exercises/{assignment}: {leaked}"


def site_texts(site: Path):
    """(path, text) of every text file of the built site, HTML reduced to its visible text."""
    for path in site.rglob("*"):
        if not path.is_file() or path.suffix not in {".html", ".txt", ".js", ".json", ".ipynb", ".md", ".py"}:
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".html":
            text = html.unescape(re.sub(r"<[^>]+>", "", text))
        yield path, text


@pytest.mark.slow
def test_built_book_holds_no_solution(built_site):
    lines = {line: assignment for assignment in ASSIGNMENTS for line in solution_lines(assignment)}
    normalized = {re.sub(r"\s+", " ", line): line for line in lines}
    problems = []
    for path, text in site_texts(built_site):
        for marker in MARKERS:
            if marker in text:
                problems.append(f"{path.relative_to(built_site)}: {marker!r}")
        flat = re.sub(r"\s+", " ", text)
        for needle, line in normalized.items():
            if needle in flat:
                problems.append(f"{path.relative_to(built_site)}: solution line of {lines[line]}: {line!r}")
    assert not problems, "\n".join(problems)


# --- (3) the solutions run; (4) the student versions fail only with NotImplementedError ---------------------


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solutions_run_top_to_bottom(runs, assignment):
    notebook = runs["execute", "solutions", assignment]
    assert not errors(notebook)
    tests = [cell for cell in notebook.cells if is_test_cell(cell)]
    for cell in tests:
        printed = "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")
        assert "visible tests passed" in printed, f"test cell {nbgrader(cell)['grade_id']} printed {printed!r}"
    last = [cell for cell in notebook.cells if cell.cell_type == "code"][-1]
    assert last.execution_count is not None


@pytest.mark.slow
def test_cnn_vs_fc_trains_the_three_nets(runs):
    """The solution trains all three nets to their accuracies and plots them (its time is a benchmark's: bench_book)."""
    notebook = runs["execute", "solutions", "cnn_vs_fc"]
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.outputs if output.output_type == "stream")
    accuracy = dict(re.findall(r"(\w+Net): [\d,]+ parameters, [\d,]+ multiply-adds, test accuracy ([\d.]+)%", printed))
    assert set(accuracy) == {"ConvNet", "FCNet", "DesignNet"}, printed
    assert float(accuracy["ConvNet"]) > 90 and float(accuracy["FCNet"]) > 85, accuracy
    assert float(accuracy["DesignNet"]) >= 95, f"the solution's design must clear the top step (93% held out) by far: {accuracy}"
    assert any(output.output_type == "display_data" and "image/png" in output.data
               for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs), "no plot"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_versions_raise_only_not_implemented(runs, assignment):
    """Run cell by cell, errors allowed: every error is NotImplementedError, and there is at least one."""
    found = errors(runs["execute", "exercises", assignment])
    assert found, f"the untouched exercises/{assignment} raised no NotImplementedError"
    others = [error for error in found if error[1] != "NotImplementedError"]
    assert not others, f"exercises/{assignment}: errors other than NotImplementedError (cell, name, value): {others}"


# --- (5) the graded API ------------------------------------------------------------------------------------

def definitions(path: Path) -> dict[str, list]:
    """Top-level function and class names with their arguments (a class: its __init__'s, without self)."""
    code = "\n".join(cell.source for cell in read(path).cells if cell.cell_type == "code")
    found = {}
    for node in ast.parse(code).body:
        if isinstance(node, ast.ClassDef):
            init = next((item for item in node.body
                         if isinstance(item, ast.FunctionDef) and item.name == "__init__"), None)
            found[node.name] = signature(init)[1:] if init else []
        elif isinstance(node, ast.FunctionDef):
            found[node.name] = signature(node)
    return found


def signature(function: ast.FunctionDef) -> list:
    args = function.args.args
    defaults = [NO_DEFAULT] * (len(args) - len(function.args.defaults)) + [
        ast.literal_eval(default) for default in function.args.defaults]
    return [(arg.arg, default) for arg, default in zip(args, defaults)]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
@pytest.mark.parametrize("source", ["solutions", "exercises"])
def test_api_is_defined(assignment, source):
    found = definitions(ROOT / source / assignment / f"{assignment}.ipynb")
    for name, expected in API[assignment].items():
        assert name in found, f"{source}/{assignment} does not define {name}"
        got = found[name]
        if expected and expected[-1][1] is ...:  # any default accepted
            got = [(arg, ... if default is not NO_DEFAULT else default) for arg, default in got]
        assert got == expected, f"{source}/{assignment}: {name} takes {got}, the API says {expected}"


# --- (6) nbgrader validate ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_nbgrader_validate(runs, assignment):
    solved = runs["validate", "solutions", assignment]
    assert "Success! Your notebook passes all the tests." in solved, solved[-3000:]
    unsolved = runs["validate", "exercises", assignment]
    assert "VALIDATION FAILED" in unsolved and "NotImplementedError" in unsolved, unsolved[-3000:]
    assert "Success!" not in unsolved


# --- the notebooks as nbgrader and the grader read them -----------------------------------------------------

@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_nbgrader_metadata(assignment):
    notebook = read(solution_path(assignment))
    ids = [nbgrader(cell)["grade_id"] for cell in notebook.cells if nbgrader(cell)]
    assert len(ids) == len(set(ids)), f"duplicate grade_ids: {ids}"
    tests = [cell for cell in notebook.cells if is_test_cell(cell)]
    assert len(tests) >= 3
    for cell in tests:
        meta = nbgrader(cell)
        assert meta["locked"] and meta["points"] > 0 and cell.cell_type == "code", meta
        assert "assert" in cell.source or "raise AssertionError" in cell.source or "check(" in cell.source
        assert SKIP_TAG not in cell.metadata.get("tags", [])
    for cell in notebook.cells:
        if "### BEGIN SOLUTION" in cell.source:
            assert nbgrader(cell).get("solution") is True and nbgrader(cell).get("grade") is False, cell.source[:80]
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "committed notebooks carry no outputs"
    assert notebook.metadata.kernelspec.name == "python3"


def test_receptive_fields_solution_uses_no_convolution_routine():
    """The functions that must not call PyTorch's convolutions do not, by the hidden suite's own rule (its test
    cells may: they check the student's functions against F.conv_transpose2d and autograd)."""
    # Loaded by path under its own name: another suite's `reference` module may already be imported as `reference`.
    spec = importlib.util.spec_from_file_location(
        "receptive_fields_reference", ROOT / "autograder" / "suites" / "receptive_fields" / "reference.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    CONVOLUTIONS = reference.CONVOLUTIONS
    from autograder.banned import routines_used
    cells = [(i, cell.source) for i, cell in enumerate(read(solution_path("receptive_fields")).cells)
             if cell.cell_type == "code"]
    for function in ("conv_transpose2d", "conv2d_input_grad"):
        assert not routines_used(cells, function, CONVOLUTIONS), function
    markdown = "\n".join(cell.source for cell in read(solution_path("receptive_fields")).cells
                         if cell.cell_type == "markdown")
    named = {name for name in CONVOLUTIONS if re.search(rf"\b{name}`", markdown)}
    layers = {f"{family}{d}" for family in ("Conv", "ConvTranspose", "LazyConv") for d in ("1d", "2d", "3d")
              if f"nn.{family}1d`/`2d`/`3d`" in markdown}
    assert CONVOLUTIONS - named - layers == {"_convolution"}, "the notebook must name every routine the grader bans"


def test_conv_basics_solution_uses_no_convolution_routine():
    cells = read(solution_path("conv_basics")).cells
    code = "\n".join(cell.source for cell in cells if cell.cell_type == "code")
    assert not re.search(r"F\.conv|torch\.conv|nn\.Conv|conv2d\(|max_pool|avg_pool|unfold", code)
    markdown = "\n".join(cell.source for cell in cells if cell.cell_type == "markdown")
    assert "F.conv2d" in markdown, "the notebook must say that PyTorch's convolutions are off limits"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_grader_runs_only_quick_cells(assignment):
    """The grader runs every cell but those tagged skip-in-grader: the data, training and plots must be tagged, test
    cells only check small tensors, and the other cells only import and define (judged by what the code is, not by
    a stopwatch, so the verdict does not depend on the machine's load)."""
    notebook = read(solution_path(assignment))
    slow = re.compile(r"datasets\.|DataLoader\(\w+_set|plt\.|train_one_epoch\(net|\.fit\(|MNIST|load_mnist")
    for cell in notebook.cells:
        if cell.cell_type != "code" or SKIP_TAG in cell.metadata.get("tags", []):
            continue
        assert not slow.search(cell.source), f"cell not tagged {SKIP_TAG}: {cell.source[:200]}"
        if is_test_cell(cell):
            continue
        body = ast.parse(cell.source).body
        if any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in body):  # importing torch takes seconds
            allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Expr, ast.Assign)
            assert all(isinstance(node, allowed) for node in body), f"the import cell does more: {cell.source[:200]}"
        else:
            assert all(isinstance(node, (ast.FunctionDef, ast.ClassDef)) for node in body), (
                f"an untagged cell that is not a test must only define: {cell.source[:200]}")
    tagged_sources = [cell.source for cell in notebook.cells if SKIP_TAG in cell.metadata.get("tags", [])]
    if assignment == "cnn_vs_fc":
        assert any("datasets.MNIST" in source for source in tagged_sources)
        assert any("train_one_epoch(" in source for source in tagged_sources)
        assert any("plt." in source for source in tagged_sources)


def test_design_spec_lists_what_the_grader_rebuilds():
    """DesignNet's spec names every layer, function and tensor method the hidden suite rebuilds, and no other."""
    sys.path.insert(0, str(ROOT / "autograder" / "suites" / "cnn_vs_fc"))
    try:
        import design
        import layers
    finally:
        sys.path.pop(0)
    text = "\n".join(cell.source for cell in read(solution_path("cnn_vs_fc")).cells if cell.cell_type == "markdown")
    spec = text[text.index("## 5. A ConvNet of your own"):text.index("## 6.")]
    named = set(re.findall(r"`((?:nn|F|torch)\.\w+|\.\w+)`", spec))
    functional = ("torch.nn.functional.", "torch._C._nn.")  # F.avg_pool2d and F.gelu are torch._C._nn's
    functions = {("F." if name.startswith(functional) else "torch.") + name.rsplit(".", 1)[1]
                 for name in design.FUNCTIONS if name.startswith("torch")}
    expected = {f"nn.{name}" for name in layers.BUILDABLE} | functions | {f".{name}" for name in design.METHODS}
    assert named - {"torch.fx", "torch.optim"} == expected | {"nn.Sequential", "nn.ModuleList"}


def test_cnn_vs_fc_reads_the_sample_shipped_beside_it():
    """The data cell reads mnist_sample/ relative to the notebook, which nbgrader releases with it, and the
    solution's copy is byte for byte the book's (coursekit/mnist_sample), so git stores it once."""
    code = "\n".join(cell.source for cell in read(solution_path("cnn_vs_fc")).cells if cell.cell_type == "code")
    assert 'Path("mnist_sample")' in code and "MNIST_FULL" in code and "coursekit" not in code
    assert "download=True" not in code, "the notebook must run offline: nothing in it downloads data"
    assert "../" not in code, "the notebook must not reach outside its own folder"
    assert re.search(r"DataLoader\(test_set, [^)]*shuffle=False", code), "the test loader is not shuffled"
    shipped = sorted(path.name for path in (ROOT / "solutions" / "cnn_vs_fc" / "mnist_sample").iterdir())
    assert shipped == sorted(path.name for path in (ROOT / "coursekit" / "mnist_sample").iterdir())
    for name in shipped:
        assert (ROOT / "solutions" / "cnn_vs_fc" / "mnist_sample" / name).read_bytes() == (
            ROOT / "coursekit" / "mnist_sample" / name).read_bytes(), f"the two copies of {name} differ"

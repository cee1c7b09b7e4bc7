"""The GitHub Actions workflows: linted by the real actionlint, sharing one set-up, grading on matching devices.

actionlint is rhysd/actionlint v1.7.7 compiled to WebAssembly, from the npm package pinned in
tools/package-lock.json (`make tools/node_modules/.installed`, a prerequisite of `make test`), run by
tools/actionlint.cjs. Its shellcheck and pyflakes rules need external programs and are off in the wasm.
"""
from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SETUP_ACTION = ROOT / ".github" / "actions" / "setup" / "action.yml"
SETUP_USES = "./.github/actions/setup"
LINTER = ROOT / "tools" / "actionlint.cjs"
GPU_RUNNER = ["self-hosted", "gpu"]


def actionlint(*files: Path, cwd: Path = ROOT) -> tuple[int, list[dict]]:
    """Run actionlint on ``files``; return its exit status and its findings."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: actionlint runs on Node.js")
    if not (ROOT / "tools" / "node_modules" / "@tktco" / "node-actionlint").is_dir():
        pytest.fail("actionlint is not installed: run `make tools/node_modules/.installed`")
    proc = subprocess.run([node, str(LINTER), "--json", *map(str, files)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), f"actionlint failed to run:\n{proc.stdout}\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


# --- actionlint ------------------------------------------------------------------------------------

def test_the_workflows_are_there():
    assert {p.name for p in WORKFLOWS} >= {"book.yml", "test.yml", "grade.yml"}


def test_actionlint_finds_nothing_in_the_workflows():
    status, findings = actionlint(*WORKFLOWS)
    report = "\n".join(f"{f['path']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings)
    assert status == 0 and not findings, f"actionlint:\n{report}"


BROKEN = """\
on:
  push:
    branchs: [main]
jobs:
  build:
    runs-on: ubuntu-latst
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-dept: 0
      - run: echo "${{ matrix.nope }}"
      - run: echo "${{ github.event.head_commit.message }"
"""


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The lint test above cannot pass by running nothing: the same linter fails this file, line by line."""
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN)
    status, findings = actionlint(broken, cwd=tmp_path)
    assert status == 1
    found = {(f["line"], f["kind"]) for f in findings}
    assert {(3, "syntax-check"), (6, "runner-label"), (10, "action"), (11, "expression"),
            (12, "expression")} <= found, findings


def test_actionlint_reads_the_project_config_and_local_actions(tmp_path):
    """In a repository, actionlint reads .github/actionlint.yaml (the `gpu` label) and local actions' inputs."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    shutil.copytree(SETUP_ACTION.parent, tmp_path / ".github" / "actions" / "setup")
    workflow = tmp_path / ".github" / "workflows" / "w.yml"
    workflow.write_text(textwrap.dedent("""\
        on: workflow_dispatch
        jobs:
          gpu:
            runs-on: [self-hosted, gpu]
            steps:
              - uses: actions/checkout@v4
              - uses: ./.github/actions/setup
                with:
                  book-cash: "true"
        """))
    status, findings = actionlint(workflow, cwd=tmp_path)
    assert status == 1
    assert {(f["line"], f["kind"]) for f in findings} == {(4, "runner-label"), (9, "action")}, findings

    shutil.copy(ROOT / ".github" / "actionlint.yaml", tmp_path / ".github" / "actionlint.yaml")
    status, findings = actionlint(workflow, cwd=tmp_path)
    assert [(f["line"], f["kind"]) for f in findings] == [(9, "action")], findings


# --- one shared set-up -----------------------------------------------------------------------------

COPIED_SETUP = re.compile(r"make setup|pip install|-m venv|virtualenv")


def test_the_setup_action_holds_the_setup():
    action = load(SETUP_ACTION)
    assert action["runs"]["using"] == "composite"
    uses = [s.get("uses", "") for s in action["runs"]["steps"]]
    runs = " ".join(s.get("run", "") for s in action["runs"]["steps"])
    python = next(s for s in action["runs"]["steps"] if s.get("uses", "").startswith("actions/setup-python@"))
    assert python["with"]["python-version"] == "${{ inputs.python-version }}"
    assert action["inputs"]["python-version"]["default"] == "3.11"
    assert python["with"]["cache"] == "pip"
    assert "make setup" in runs
    cache = next(s for s in action["runs"]["steps"] if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == "_build/.jupyter_cache"
    assert "book/**" in cache["with"]["key"], "the execution cache is keyed on the book's sources"
    assert any(u.startswith("actions/cache@") for u in uses)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_workflow_uses_the_shared_setup(path):
    workflow = load(path)
    using = []
    for name, job in workflow["jobs"].items():
        uses = [s.get("uses", "") for s in steps(job)]
        for step in steps(job):
            assert not step.get("uses", "").startswith("actions/setup-python@"), f"{name}: set-up copied"
            assert not COPIED_SETUP.search(step.get("run", "")), f"{name}: set-up copied: {step['run']}"
        if SETUP_USES in uses:
            using.append(name)
            # the action is read from the checkout, so the checkout comes first
            checkout = next(i for i, u in enumerate(uses) if u.startswith("actions/checkout@"))
            assert checkout < uses.index(SETUP_USES), f"{name}: check out before {SETUP_USES}"
            first_use_of_venv = next(i for i, s in enumerate(steps(job))
                                     if re.search(r"\bmake\b|\.venv/", s.get("run", "")))
            assert uses.index(SETUP_USES) < first_use_of_venv, f"{name}: set up before using .venv"
        else:
            assert not any(re.search(r"\bmake\b|\.venv/", s.get("run", "")) for s in steps(job)), \
                f"{name} runs the project without {SETUP_USES}"
    assert using, f"{path.name} does not use {SETUP_USES}"


# --- what each workflow does -----------------------------------------------------------------------

def test_book_workflow_builds_with_its_cache_and_deploys_to_pages():
    workflow = load(ROOT / ".github" / "workflows" / "book.yml")
    assert "main" in workflow["on"]["push"]["branches"] and "workflow_dispatch" in workflow["on"]
    assert workflow["concurrency"]["group"] == "pages"
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    setup = next(s for s in steps(build) if s.get("uses") == SETUP_USES)
    assert setup["with"]["book-cache"] == "true"
    assert any(s.get("run") == "make book" for s in steps(build))
    upload = next(s for s in steps(build) if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in steps(deploy))


def test_test_workflow_runs_make_test_on_pull_requests():
    workflow = load(ROOT / ".github" / "workflows" / "test.yml")
    assert "pull_request" in workflow["on"]
    assert any(s.get("run") == "make test" for job in workflow["jobs"].values() for s in steps(job))


def expand_matrix(matrix: dict, expressions: dict[str, list]) -> list[dict]:
    """GitHub's expansion of ``strategy.matrix``: the product of the axes, less ``exclude``, with each
    ``include`` entry added to every combination whose original values it does not change (or added
    as a combination of its own when it fits none). ``expressions`` gives the values of ``${{ }}`` axes."""
    axes = {k: expressions.get(v, v) if isinstance(v, str) else v
            for k, v in matrix.items() if k not in ("include", "exclude")}
    combos = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    for ex in matrix.get("exclude", []):
        combos = [c for c in combos if any(c.get(k) != v for k, v in ex.items())]
    originals = [dict(c) for c in combos]
    for inc in matrix.get("include", []):
        fits = [c for c, o in zip(combos, originals) if all(o[k] == v for k, v in inc.items() if k in o)]
        for c in fits:
            c.update(inc)
        if not fits:
            combos.append(dict(inc))
            originals.append(dict(inc))
    return combos


def substitute(text, combo: dict):
    """``${{ matrix.a.b }}`` in ``text`` replaced by ``combo["a"]["b"]`` (the value itself when it is all of ``text``)."""
    if isinstance(text, list):
        return [substitute(t, combo) for t in text]

    def value(path: str):
        found = combo
        for key in path.split("."):
            found = found[key]
        return found

    pattern = r"\$\{\{\s*matrix\.([\w.]+)\s*\}\}"
    whole = re.fullmatch(pattern, text)
    if whole:
        return value(whole.group(1))
    return re.sub(pattern, lambda m: str(value(m.group(1))), text)


def plan(device: str, shards: int, tmp_path: Path) -> dict[str, list]:
    """Run the grade workflow's plan step for real (bash, as on the runner); returns its outputs, parsed."""
    step = next(s for s in steps(load(ROOT / ".github" / "workflows" / "grade.yml")["jobs"]["plan"]) if s.get("id"))
    output = tmp_path / f"output-{device}"
    run = subprocess.run(["bash", "-e", "-c", step["run"]], capture_output=True, text=True,
                         env={"SHARDS": str(shards), "DEVICE": device, "GITHUB_OUTPUT": str(output),
                              "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stdout + run.stderr
    return {key: json.loads(value) for key, value in (line.split("=", 1) for line in output.read_text().splitlines())}


def grade_legs(outputs: dict[str, list]) -> list[tuple[str, str, int]]:
    """(runner, device, shard) of every grading job the matrix expands to, as GitHub expands it."""
    workflow = load(ROOT / ".github" / "workflows" / "grade.yml")
    job = workflow["jobs"]["grade"]
    matrix = job["strategy"]["matrix"]
    assert matrix["leg"] == "${{ fromJSON(needs.plan.outputs.legs) }}"
    assert matrix["shard"] == "${{ fromJSON(needs.plan.outputs.shards) }}"
    combos = expand_matrix(matrix, {matrix["leg"]: outputs["legs"], matrix["shard"]: outputs["shards"]})
    grade = next(s for s in steps(job) if "-m autograder grade" in s.get("run", ""))
    assert re.search(r'--device "\$DEVICE"', grade["run"]) and "--shard" in grade["run"]
    return [(json.dumps(substitute(job["runs-on"], c)), substitute(grade["env"]["DEVICE"], c), c["shard"])
            for c in combos]


HOSTED, GPU = (json.dumps("ubuntu-latest"), "cpu"), (json.dumps(GPU_RUNNER), "cuda")


@pytest.mark.parametrize("device, legs", [("cpu", [HOSTED]), ("gpu", [GPU]), ("both", [HOSTED, GPU])])
def test_grade_input_chooses_the_devices_and_pairs_each_runner_with_its_device(device, legs, tmp_path):
    """One input: cpu (the default) grades each shard once on a hosted runner; gpu only on the GPU runner."""
    inputs = load(ROOT / ".github" / "workflows" / "grade.yml")["on"]["workflow_dispatch"]["inputs"]
    suites = {path.name for path in (ROOT / "autograder" / "suites").iterdir() if any(path.glob("test_*.py"))}
    assert sorted(inputs["assignment"]["options"]) == sorted(suites)  # every assignment, and only those
    assert inputs["device"]["options"] == ["cpu", "gpu", "both"] and inputs["device"]["default"] == "cpu"
    assert inputs["shards"]["default"] == 2
    got = grade_legs(plan(device, 3, tmp_path))
    assert sorted(got) == sorted((runner, dev, k) for runner, dev in legs for k in (1, 2, 3))


def test_grade_plan_refuses_an_unknown_device(tmp_path):
    step = next(s for s in steps(load(ROOT / ".github" / "workflows" / "grade.yml")["jobs"]["plan"]) if s.get("id"))
    run = subprocess.run(["bash", "-e", "-c", step["run"]], capture_output=True, text=True,
                         env={"SHARDS": "2", "DEVICE": "tpu", "GITHUB_OUTPUT": str(tmp_path / "out"),
                              "PATH": "/usr/bin:/bin"})
    assert run.returncode == 1 and "device must be cpu, gpu or both" in run.stdout


def test_grade_runs_as_root_with_sudo_and_hands_the_files_back():
    """On a hosted runner (not root, passwordless sudo) the grader runs under sudo, by the venv's full path,
    with the hidden tests and notebooks closed to other users; the files root wrote are chowned back to the
    runner's user, even when grading fails."""
    job = load(ROOT / ".github" / "workflows" / "grade.yml")["jobs"]["grade"]
    script = next(s for s in steps(job) if "-m autograder grade" in s.get("run", ""))["run"]
    assert '"$PWD/.venv/bin/python" -m autograder grade' in script
    sudo_branch = script[script.index("sudo -n true"):script.index("else")]
    assert 'sudo "${grade[@]}" || status=$?' in sudo_branch
    assert sudo_branch.index('sudo "${grade[@]}"') < sudo_branch.index('sudo chown -R "$(id -u):$(id -g)" .')
    assert 'exit "$status"' in sudo_branch
    assert 'chmod -R go-rwx autograder/suites "$SUBMISSIONS"' in sudo_branch.split('sudo "${grade[@]}"')[0]


def test_grade_workflow_uploads_each_leg_and_merges_each_device():
    workflow = load(ROOT / ".github" / "workflows" / "grade.yml")
    grade, merge = workflow["jobs"]["grade"], workflow["jobs"]["merge"]
    upload = next(s for s in steps(grade) if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "matrix.leg.kind" in upload["with"]["name"] and "matrix.shard" in upload["with"]["name"]
    assert "grade" in merge["needs"] and "plan" in merge["needs"]
    assert merge["strategy"]["matrix"]["leg"] == grade["strategy"]["matrix"]["leg"]
    download = next(s for s in steps(merge) if s.get("uses", "").startswith("actions/download-artifact@"))
    assert "matrix.leg.kind" in download["with"]["pattern"]
    assert any("-m autograder merge" in s.get("run", "") and "--out merged" in s["run"] for s in steps(merge))
    final = [s for s in steps(merge) if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert final and final[-1]["with"]["path"].rstrip("/") == "merged"


CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def test_hosted_jobs_install_cpu_only_torch_and_the_gpu_leg_pypis(tmp_path):
    """A hosted runner has no GPU: its grading legs and the merges set up PyTorch's CPU-only builds (a tenth of
    the download); the GPU leg keeps PyPI's CUDA build."""
    workflow = load(ROOT / ".github" / "workflows" / "grade.yml")
    job = workflow["jobs"]["grade"]
    matrix = job["strategy"]["matrix"]
    outputs = plan("both", 1, tmp_path)
    setup = next(s for s in steps(job) if s.get("uses") == SETUP_USES)
    indexes = {json.dumps(substitute(job["runs-on"], combo)): substitute(setup["with"]["torch-index"], combo)
               for combo in expand_matrix(matrix, {matrix["leg"]: outputs["legs"], matrix["shard"]: outputs["shards"]})}
    assert indexes == {HOSTED[0]: CPU_INDEX, GPU[0]: ""}
    merge_setup = next(s for s in steps(workflow["jobs"]["merge"]) if s.get("uses") == SETUP_USES)
    assert merge_setup["with"]["torch-index"] == CPU_INDEX
    action = load(SETUP_ACTION)
    make_setup = next(s for s in action["runs"]["steps"] if s.get("run") == "make setup")
    assert make_setup["env"]["TORCH_INDEX"] == "${{ inputs.torch-index }}"
    assert action["inputs"]["torch-index"]["default"] == ""


@pytest.mark.parametrize("index", [CPU_INDEX, ""])
def test_make_setup_takes_torch_at_its_pins_from_the_index_first(index):
    """`make setup` with TORCH_INDEX installs torch and torchvision, at requirements.txt's pins, from that index
    before requirements.txt (which they then satisfy: 2.14.1+cpu is a 2.14.1); without it, only requirements.txt."""
    commands = subprocess.run(["make", "-n", "-B", "setup", f"TORCH_INDEX={index}"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.splitlines()
    from_index = [c for c in commands if "--index-url" in c]
    requirements = commands.index(".venv/bin/python -m pip install -r requirements.txt")
    if not index:
        assert not from_index
        return
    assert len(from_index) == 1 and commands.index(from_index[0]) < requirements
    command = subprocess.run(["bash", "-c", f"echo {from_index[0]}"], cwd=ROOT, capture_output=True, text=True).stdout
    pins = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith(("torch==",
                                                                                                      "torchvision=="))]
    assert command.split() == [".venv/bin/python", "-m", "pip", "install", "--index-url", CPU_INDEX, *pins]

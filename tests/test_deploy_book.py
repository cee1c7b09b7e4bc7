"""Chapters that run anywhere: the notebooks the site publishes, outside the repository, after one install step.

- Every chapter starts with the install cell: `%pip install "<this project> @ <repository>/archive/.../main.zip"`,
  a no-op where the course's helpers (coursekit) are importable, as in the repository and the book's build.
- Every published notebook (the page's download button; the workflow pushes the same files for Colab and Binder)
  runs top to bottom in an empty folder, with a kernel from a fresh environment that has the libraries a user
  brings (the course venv's site-packages on its path, without the editable install of this checkout) but not
  the course, after that install: from the tracked files of this checkout zipped as GitHub's archive of main.
- Every Binder and Colab URL of the built pages opens `<page>.ipynb` on the branch that the workflow's publish
  step (tools/publish_notebooks.py, run here into a local bare repository) pushes, beside binder/.
- binder/ installs CPU-only torch from PyTorch's CPU index, pinned like requirements.txt.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jupytext
import nbformat
import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from test_book import toc_files

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHAPTERS = sorted(path.stem for path in (ROOT / "book").glob("0*.md"))
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def published_branch_of_main() -> str:
    """The branch the publishing workflow builds from (the source the install cell downloads)."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    branches = workflow[True]["push"]["branches"]  # YAML 1.1 reads the key `on` as True
    assert len(branches) == 1, branches
    return branches[0]


def install_spec() -> str:
    """What the install cell installs: this project from the repository's archive of the published branch."""
    url = config()["repository"]["url"].rstrip("/")
    return f"{project()['name']} @ {url}/archive/refs/heads/{published_branch_of_main()}.zip"


INSTALL_CELL = """# Outside the course's repository (Colab, Binder, a downloaded notebook), this installs the course's helpers:
try:
    import coursekit
except ModuleNotFoundError:
    %pip install --quiet "{spec}\""""


# --- the sources (fast) -----------------------------------------------------------------------------------------

def test_every_chapter_is_in_the_table_of_contents():
    listed = toc_files()
    assert len(CHAPTERS) == 8 and [f"book/{chapter}" for chapter in CHAPTERS] == [
        file for file in listed if file.startswith("book/0")], (CHAPTERS, listed)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_starts_with_the_install_cell(chapter):
    notebook = jupytext.read(ROOT / "book" / f"{chapter}.md")
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert first.source == INSTALL_CELL.format(spec=install_spec()), (
        f"book/{chapter}.md: its first code cell is\n{first.source}\nexpected\n"
        f"{INSTALL_CELL.format(spec=install_spec())}")


def pins(path: Path) -> dict[str, Requirement]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]
    return {requirement.name: requirement for requirement in requirements}


def test_binder_installs_cpu_torch_pinned_like_the_course():
    binder = ROOT / "binder"
    lines = (binder / "requirements.txt").read_text().splitlines()
    assert f"--extra-index-url {CPU_INDEX}" in lines
    assert (binder / "runtime.txt").read_text().strip() == "python-3.11"
    course, chosen = pins(ROOT / "requirements.txt"), pins(binder / "requirements.txt")
    needed = {Requirement(dependency).name for dependency in project()["dependencies"]}
    assert set(chosen) == needed, f"binder/ installs {sorted(chosen)}; the chapters need {sorted(needed)}"
    for name, requirement in chosen.items():
        (specifier,) = requirement.specifier
        pinned = next(iter(course[name].specifier)).version
        assert specifier.operator == "==", f"binder/: {requirement} is not pinned"
        if name in ("torch", "torchvision"):
            assert specifier.version == f"{pinned}+cpu", f"binder/: {requirement}, expected {name}=={pinned}+cpu"
        else:
            assert specifier.version == pinned, f"binder/: {requirement}, requirements.txt pins {course[name]}"


# --- the published notebooks, run elsewhere (slow) --------------------------------------------------------------

def published_notebooks(site: Path) -> dict[str, Path]:
    """page name (e.g. 'book/02_padding') -> the notebook the page's download button gives."""
    sources = site / "_sources"
    return {path.relative_to(sources).with_suffix("").as_posix(): path for path in sorted(sources.rglob("*.ipynb"))}


def github_archive(folder: Path) -> Path:
    """This checkout's tracked files (as they are now) laid out as GitHub's archive of the branch."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    archive = folder / f"{published_branch_of_main()}.zip"
    top = f"{config()['repository']['url'].rstrip('/').rsplit('/', 1)[-1]}-{published_branch_of_main()}"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name in listed:
            if name and (ROOT / name).is_file():
                bundle.write(ROOT / name, f"{top}/{name}")
    return archive


@pytest.fixture(scope="module")
def user_env(tmp_path_factory) -> tuple[Path, dict]:
    """A fresh venv whose path holds the course venv's site-packages (torch, Jupyter ...) but not this project,
    after the install cell's command (the archive's URL swapped for a local copy, no index: we are offline)."""
    base = tmp_path_factory.mktemp("user")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # a plain path entry: its own .pth files (the editable install of the repository) are not run
    (site / "libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "MNIST_FULL")}
    env.update(HOME=str(base / "home"), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    (base / "home").mkdir()
    before = subprocess.run([str(python), "-c", "import coursekit"], cwd=base, env=env, capture_output=True,
                            text=True)
    assert before.returncode != 0, "coursekit is importable before the install: the test would prove nothing"

    spec = install_spec()
    local = f"{spec.split(' @ ')[0]} @ {github_archive(base).as_uri()}"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-build-isolation",
                              local], cwd=base, env=env, capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    return python, env


RUNNER = """
import sys
import nbformat
from nbclient import NotebookClient

path = sys.argv[1]
notebook = nbformat.read(path, as_version=4)
probe = "import coursekit, sys; print(coursekit.__file__); print(sys.executable)"
notebook.cells.append(nbformat.v4.new_code_cell(probe))
NotebookClient(notebook, kernel_name="python3", timeout=600, resources={"metadata": {"path": sys.argv[2]}}).execute()
nbformat.write(notebook, path)
"""


Run = tuple[subprocess.CompletedProcess, Path]


def run_in_empty_folder(python: Path, env: dict, notebook: Path, folder: Path) -> Run:
    """Put the notebook alone in a new folder and run it there with the user's python3 kernel, plus a last cell
    that prints where coursekit and the kernel come from."""
    folder.mkdir(parents=True)
    copy = folder / notebook.name
    copy.write_bytes(notebook.read_bytes())
    run = subprocess.run([str(python), "-c", RUNNER, str(copy), str(folder)], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=900)
    return run, copy


@pytest.mark.slow
def test_published_notebooks_run_in_an_empty_folder_after_the_install(built_site, user_env, tmp_path):
    python, env = user_env
    notebooks = published_notebooks(built_site)
    assert sorted(notebooks) == [f"book/{chapter}" for chapter in CHAPTERS]
    with ThreadPoolExecutor(max_workers=3) as pool:
        jobs = {page: pool.submit(run_in_empty_folder, python, env, path, tmp_path / page.replace("/", "_"))
                for page, path in notebooks.items()}
        runs = {page: job.result() for page, job in jobs.items()}
    for page, (run, executed) in runs.items():
        assert run.returncode == 0, f"{page}.ipynb failed outside the repository:\n{run.stderr[-4000:]}"
        probe = nbformat.read(executed, as_version=4).cells[-1]
        printed = "".join(output.get("text", "") for output in probe.outputs).split()
        venv = python.parent.parent
        assert Path(printed[0]).is_relative_to(venv) and Path(printed[1]).parent == python.parent, (
            f"{page}: the kernel used {printed}, not the user's environment {venv}")


# --- the launch buttons and what the workflow publishes (slow: needs the build) ---------------------------------

class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def launch_targets(page: Path) -> dict[str, tuple[str, str, str]]:
    """{'binder' | 'colab': (org/repo, branch, path in the repository)} of a built page's launch buttons."""
    parser = Links()
    parser.feed(page.read_text(encoding="utf8"))
    found = {}
    for href in parser.hrefs:
        url = urlsplit(href)
        if url.netloc == "mybinder.org":
            _, _, provider, org, repo, branch = url.path.split("/")
            assert provider == "gh", href
            (urlpath,) = parse_qs(url.query)["urlpath"]
            assert urlpath.startswith("lab/tree/"), href
            found["binder"] = (f"{org}/{repo}", branch, urlpath.removeprefix("lab/tree/"))
        elif url.netloc == "colab.research.google.com":
            _, provider, org, repo, blob, branch, path = url.path.split("/", 6)
            assert (provider, blob) == ("github", "blob"), href
            found["colab"] = (f"{org}/{repo}", branch, path)
    return found


@pytest.fixture(scope="module")
def notebooks_branch(built_site, tmp_path_factory) -> tuple[str, dict[str, bytes]]:
    """Run the workflow's publish step into a local bare repository: (branch, {path: content}) it holds."""
    remote = tmp_path_factory.mktemp("remote") / "course.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(remote)], check=True)
    publish = subprocess.run([sys.executable, "tools/publish_notebooks.py", str(built_site), str(remote)], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert publish.returncode == 0, publish.stdout + publish.stderr
    branch = config()["repository"]["branch"]
    names = subprocess.run(["git", "-C", str(remote), "ls-tree", "-r", "--name-only", branch], capture_output=True,
                           text=True, check=True).stdout.split()
    content = {name: subprocess.run(["git", "-C", str(remote), "show", f"{branch}:{name}"], capture_output=True,
                                    check=True).stdout for name in names}
    return branch, content


def test_the_workflow_publishes_the_notebooks_branch_from_main():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    build = workflow["jobs"]["build"]
    runs = [step.get("run", "") for step in build["steps"]]
    publish = next(i for i, run in enumerate(runs) if "tools/publish_notebooks.py _build/html" in run)
    assert runs.index("make book") < publish
    assert build["steps"][publish]["if"] == "github.ref == 'refs/heads/main'"
    assert build["permissions"]["contents"] == "write"


@pytest.mark.slow
def test_launch_buttons_open_notebooks_the_workflow_publishes(built_site, notebooks_branch):
    branch, published = notebooks_branch
    repository = "/".join(config()["repository"]["url"].rstrip("/").split("/")[-2:])
    assert {"binder/requirements.txt", "binder/runtime.txt"} <= set(published)
    for name in ("requirements.txt", "runtime.txt"):
        assert published[f"binder/{name}"] == (ROOT / "binder" / name).read_bytes()
    downloads = published_notebooks(built_site)
    opened = set()
    for page in sorted(built_site.rglob("*.html")):
        targets = launch_targets(page)
        pagename = page.relative_to(built_site).with_suffix("").as_posix()
        if pagename not in downloads:
            assert not targets, f"{pagename} is not a notebook but has launch buttons {targets}"
            continue
        assert set(targets) == {"binder", "colab"}, f"{pagename}: launch buttons {targets}"
        for service, (repo, target_branch, path) in targets.items():
            assert (repo, target_branch, path) == (repository, branch, f"{pagename}.ipynb"), (
                f"{pagename}: {service} opens {repo}@{target_branch}:{path}")
            assert path in published, f"{service} opens {path}, which the publish step does not push"
            assert published[path] == downloads[pagename].read_bytes(), f"{path} differs from the page's download"
            assert json.loads(published[path])["cells"], path
            opened.add(path)
    assert opened == {f"book/{chapter}.ipynb" for chapter in CHAPTERS}

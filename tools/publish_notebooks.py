"""Publish the chapter notebooks where Colab and Binder open them: one commit on a branch of their own.

    python tools/publish_notebooks.py SITE REMOTE

takes every notebook the book's download buttons offer (``SITE/_sources/<page>.ipynb``, the executed chapters),
lays them out at ``<page>.ipynb`` with the Binder environment ``binder/`` and a README, and force-pushes them as
a single commit to ``REMOTE``'s launch branch: ``repository: branch`` in _config.yml, which the buttons open.
The publishing workflow runs it after ``make book``; the branch holds only generated files, so each publication
replaces the last one. Run from the repository's root.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = """# Chapter notebooks, generated

Published by the book's workflow from `{source}`: every chapter of the course book as an executed notebook,
opened by the book's Colab and Binder buttons. `binder/` is the Binder environment (CPU-only PyTorch).
Each notebook's first cell installs the course's helpers. Do not edit: every publication replaces this branch.
"""


def stage(site: Path, folder: Path) -> list[str]:
    """Copy the notebooks and binder/ into folder; return the notebooks' paths (relative, sorted)."""
    sources = site / "_sources"
    notebooks = sorted(path.relative_to(sources).as_posix() for path in sources.rglob("*.ipynb"))
    if not notebooks:
        raise SystemExit(f"no notebooks under {sources}: build the book first (make book)")
    for name in notebooks:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sources / name, folder / name)
    shutil.copytree(ROOT / "binder", folder / "binder")
    (folder / "README.md").write_text(README.format(source=site))
    return notebooks


def launch_branch() -> str:
    """The branch the book's launch buttons open."""
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["branch"]


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=Publish the book", "-c",
                    "user.email=publish-the-book@users.noreply.github.com", *args], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built book, e.g. _build/html")
    parser.add_argument("remote", help="where to push: a git URL or path")
    args = parser.parse_args(argv)
    branch = launch_branch()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        notebooks = stage(args.site, folder)
        git(folder, "init", "--quiet", "--initial-branch", branch)
        git(folder, "add", "--all")
        git(folder, "commit", "--quiet", "--message", f"Chapter notebooks: {len(notebooks)} generated from the book")
        git(folder, "push", "--quiet", "--force", args.remote, f"HEAD:refs/heads/{branch}")
    print(f"published {len(notebooks)} notebooks and binder/ to {branch}: {', '.join(notebooks)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

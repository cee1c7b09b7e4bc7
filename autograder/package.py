"""``python -m autograder package ASSIGNMENT --out autograder.zip``: a Gradescope autograder.

The zip holds ``setup.sh`` and ``run_autograder`` (from ``autograder/gradescope/``), the grader
with only this assignment's hidden suite, the ``coursekit`` data helpers, the bundled MNIST sample
and the pins of what setup.sh installs, taken from the project's ``requirements.txt``: ``uv.txt``,
``torch.txt`` (from PyTorch's CPU-only index) and ``requirements.txt`` (the rest of what grading imports).
Gradescope unpacks it into ``/autograder/source``; submissions are graded by the same sandbox as
locally (student code as an unprivileged user).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from packaging.requirements import Requirement

from autograder import SUITES, arguments

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "gradescope"
TORCH = {"torch", "torchvision"}  # CPU builds on Gradescope, from https://download.pytorch.org/whl/cpu
GRADING = TORCH | {"torchinfo", "numpy", "matplotlib", "tqdm", "nbformat", "ipython", "pytest"}  # what grading imports
# What setup.sh installs, file by file: uv (which provides Python 3.11), torch's CPU builds, the rest from PyPI.
PIN_FILES = {"uv.txt": {"uv"}, "torch.txt": TORCH, "requirements.txt": GRADING - TORCH}


def pins(requirements: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """The project's own pins of what the autograder installs, as the files of :data:`PIN_FILES`."""
    pinned = {}
    for line in requirements.read_text().splitlines():
        if line.split("#")[0].strip():
            requirement = Requirement(line.split("#")[0])
            pinned[requirement.name] = str(requirement)
    wanted = set().union(*PIN_FILES.values())
    if missing := wanted - set(pinned):
        raise ValueError(f"{requirements} does not pin {', '.join(sorted(missing))}")
    return {name: "".join(f"{pinned[n]}\n" for n in sorted(names)) for name, names in PIN_FILES.items()}


def files(assignment: str) -> dict[str, Path]:
    """Archive name -> file, for everything the autograder needs."""
    chosen = {name: SCRIPTS / name for name in ("setup.sh", "run_autograder")}
    for package in ("autograder", "coursekit"):
        for path in sorted((ROOT / package).rglob("*")):
            relative = path.relative_to(ROOT)
            parts = relative.parts
            hidden_elsewhere = parts[:2] == ("autograder", "suites") and len(parts) > 3 and parts[2] != assignment
            if path.is_file() and "__pycache__" not in parts and not hidden_elsewhere:
                chosen[str(relative)] = path
    return chosen


def main(argv: list[str] | None = None) -> int:
    p = arguments.Parser("package", epilog=__doc__.split("\n\n", 1)[1] + "\nUpload the zip as the assignment's "
                         "autograder (Ubuntu 22.04 or 24.04 base image) and set its\ntimeout above the grader's "
                         "own 5 minutes per submission.")
    p.add_argument("assignment", help="the assignment whose hidden suite the zip holds (a folder of autograder/suites)")
    p.add_argument("--out", type=arguments.file("autograder.zip"), default=Path("autograder.zip"), metavar="ZIP",
                   help="the zip file to write; its missing folders are created (default: %(default)s)")
    args = p.parse_args(argv)
    arguments.check_assignment(p, SUITES, args.assignment)
    arguments.make_folder(p, args.out.parent)
    try:
        write_zip(args.out, args.assignment)
    except OSError as error:
        p.error(f"cannot write {args.out}: {error.strerror}")
    print(f"wrote {args.out} (Gradescope autograder for {args.assignment})")
    return 0


def write_zip(path: Path, assignment: str) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, source in files(assignment).items():
            info = zipfile.ZipInfo.from_file(source, name)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
        archive.writestr("ASSIGNMENT", assignment + "\n")
        for name, text in pins().items():
            archive.writestr(name, text)

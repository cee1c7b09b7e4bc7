"""Each assignment as one download: ``_build/assignments/<assignment>.zip`` holds ``exercises/<assignment>/`` whole.

nbgrader releases an assignment as a folder (the notebook and the files it reads, e.g. ``cnn_vs_fc``'s
``mnist_sample/``); a student who downloads from the book needs the same folder, so the assignment pages link
this zip with ``{download}`` (``/_build/assignments/<assignment>.zip``). Written before the pages are read, with
fixed time stamps and sorted entries, so an unchanged assignment gives the same bytes.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can record


def _ignored(relative: Path) -> bool:
    """What nbgrader leaves out of a release: checkpoints, caches, hidden files."""
    return any(part.startswith(".") or part == "__pycache__" for part in relative.parts)


def write_zip(folder: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not _ignored(p.relative_to(folder))):
            info = zipfile.ZipInfo(f"{folder.name}/{path.relative_to(folder).as_posix()}", EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())


def write_assignment_zips(app) -> None:
    root = Path(app.srcdir)
    for folder in sorted(p for p in (root / "exercises").iterdir() if p.is_dir()):
        write_zip(folder, root / "_build" / "assignments" / f"{folder.name}.zip")


def setup(app):
    app.connect("builder-inited", write_assignment_zips)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""Run the chapters' notebooks side by side, one per core, before Sphinx reads them one at a time.

With ``execute_notebooks: cache`` MyST-NB runs a notebook when Sphinx reads its page, so a cold build runs the
chapters in series while all cores but one stand idle. Before reading, this runs every page about to be read that is
a notebook missing from the execution cache, as many at a time as the machine has cores (each in its own kernel
process; the threads here only wait on them), the most code first so that the longest does not start last, and
stores each result in the cache as MyST-NB would. MyST-NB then finds every one there. A notebook that fails is not
stored: MyST-NB runs it again itself and reports its error as it always does.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path, PurePosixPath
from tempfile import TemporaryDirectory

from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from jupyter_cache.executors.utils import single_nb_execution
from myst_nb.core.read import create_nb_reader
from sphinx.util import logging

logger = logging.getLogger(__name__)


def execute_notebooks(app, env, docnames) -> None:
    config = env.mystnb_config
    if config.execution_mode != "cache":
        return
    cache = get_cache(config.execution_cache_path or ".jupyter_cache")
    pending = []  # (path, reader, notebook, settings) of each notebook the cache lacks
    for docname in docnames:
        path = Path(env.doc2path(docname))
        if any(PurePosixPath(path.as_posix()).match(pattern) for pattern in config.execution_excludepatterns):
            continue
        text = path.read_text(encoding="utf8")
        reader = create_nb_reader(str(path), env.myst_config, config, text)
        if reader is None:
            continue  # a page of plain Markdown
        notebook = reader.read(text)
        overrides = dict(notebook.metadata.get(config.metadata_key, {}))  # per-notebook settings, as MyST-NB reads
        overrides.pop("output_folder", None)
        try:
            cache.match_cache_notebook(notebook)
        except KeyError:
            pending.append((path, reader, notebook, config.copy(**overrides)))
    if len(pending) < 2:
        return  # nothing to overlap: MyST-NB runs it as usual
    pending.sort(key=lambda item: -sum(len(cell.source) for cell in item[2].cells if cell.cell_type == "code"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(len(pending), cores)
    logger.info(f"[parallel_execution] running {len(pending)} notebooks, {workers} at a time")
    with ThreadPoolExecutor(workers) as pool:
        futures = [(path, reader, notebook, pool.submit(run, path, notebook, settings))
                   for path, reader, notebook, settings in pending]
        for path, reader, notebook, future in futures:
            result = future.result()
            name = path.relative_to(app.srcdir)
            if result.err is not None:
                logger.info(f"[parallel_execution] {name} failed; MyST-NB runs it again and reports the error")
                continue
            record = cache.add_nb_to_project(str(path), **({"read_data": reader.read_fmt} if reader.read_fmt else {}))
            cache.cache_notebook_bundle(CacheBundleIn(notebook, record.uri, data={"execution_seconds": result.time}),
                                        check_validity=False, overwrite=True)
            logger.info(f"[parallel_execution] {name} ran in {result.time:.1f} s")


def run(path: Path, notebook, config):
    """Execute ``notebook`` (in place) where MyST-NB would, with its settings."""
    with TemporaryDirectory() if config.execution_in_temp else nullcontext(str(path.parent)) as cwd:
        return single_nb_execution(notebook, cwd=os.path.abspath(cwd), allow_errors=config.execution_allow_errors,
                                   timeout=config.execution_timeout, meta_override=True)


def setup(app):
    app.connect("env-before-read-docs", execute_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

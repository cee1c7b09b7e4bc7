"""Keep the built site self-contained: drop the Thebe ("live code") assets that Jupyter Book always adds.

The book does not use Thebe (launch buttons open Binder or Colab instead), but sphinx-thebe puts on every page
an inline script naming a CDN (unpkg.com), declared twice, which makes the browser log
"Identifier 'THEBE_JS_URL' has already been declared". Removing its script and stylesheet from the page
context leaves nothing that refers to an external host.
"""
from __future__ import annotations


def _is_thebe(asset) -> bool:
    filename = getattr(asset, "filename", None) or str(asset)
    body = getattr(asset, "attributes", {}).get("body", "") or ""
    return "thebe" in filename.lower() or "THEBE_JS_URL" in body


def drop_thebe_assets(app, pagename, templatename, context, doctree) -> None:
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [asset for asset in context[key] if not _is_thebe(asset)]


def setup(app):
    app.connect("html-page-context", drop_thebe_assets, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""What the dashboard ships: every script and stylesheet a template names exists in the package,
each vendored library has its licence and is listed in VENDORED.md, and no template has an inline
script, an inline event handler or a URL of another origin (the CSP would refuse them)."""

from __future__ import annotations

import re
from pathlib import Path

import orchestrator.api.ui as ui

STATIC = Path(ui.__file__).parent / "static"
TEMPLATES = Path(ui.__file__).parent / "templates"


def test_every_asset_a_template_names_is_shipped() -> None:
    named = set()
    for t in TEMPLATES.glob("*.html"):
        named.update(re.findall(r'(?:src|href)="/ui/static/([^"]+)"', t.read_text()))
    assert {"app.js", "ui.css", "vendor/htmx/htmx.min.js", "vendor/echarts/echarts.min.js",
            "vendor/cytoscape/cytoscape.min.js", "vendor/cytoscape-dagre/cytoscape-dagre.min.js"} <= named
    for rel in named:
        assert (STATIC / rel).is_file(), rel


def test_vendored_libraries_have_licences_and_are_listed() -> None:
    listed = (STATIC / "vendor" / "VENDORED.md").read_text()
    libs = [d for d in (STATIC / "vendor").iterdir() if d.is_dir()]
    assert len(libs) == 4
    for d in libs:
        assert (d / "LICENSE").is_file(), d.name
        assert f"`{d.name}/" in listed, d.name
        for js in d.glob("*.js"):
            assert "sourceMappingURL" not in js.read_text(errors="replace")[-300:], js


def test_templates_have_no_inline_script_and_no_other_origin() -> None:
    for t in TEMPLATES.glob("*.html"):
        text = t.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert 'src="/ui/static/' in tag, (t.name, tag)
        assert not re.search(r"\son[a-z]+\s*=", text), t.name  # onclick= etc.
        assert not re.search(r"(src|href|action)=\"(https?:)?//", text), t.name
        assert "javascript:" not in text, t.name

"""The apps depend one way (docs/architecture.md): core <- customers <-
invoices <- billruns <- notifications, webhooks (beside each other) <- api,
and billing_site wires them. A lower app never imports a higher one, nor an
app beside it, and its templates never include a higher app's template or
name its URLs (a foreign key upwards is a string)."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each app's level; apps of one level are beside each other (neither
# imports the other).
LEVELS = {
    "core": 0,
    "customers": 1,
    "invoices": 2,
    "billruns": 3,
    "notifications": 4,
    "webhooks": 4,
    "api": 5,
}
LAYERS = list(LEVELS)
# {% include "app/..." %}, {% extends "app/..." %}, {% url 'app:name' ... %}
TEMPLATE_REFERENCE = re.compile(r"""{%\s*(?:include|extends)\s+["'](\w+)/|{%\s*url\s+["'](\w+):""")


def above(app):
    """The apps ``app`` may not import: those above it and beside it."""
    return {other for other, level in LEVELS.items() if other != app and level >= LEVELS[app]} | {
        "billing_site"
    }


def imported_apps(path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("app", LAYERS)
def test_an_app_imports_no_app_above_it(app):
    modules = [path for path in (ROOT / app).rglob("*.py") if "migrations" not in path.parts]
    upward = sorted(
        (str(path.relative_to(ROOT)), name)
        for path in modules
        for name in imported_apps(path)
        if name in above(app)
    )
    assert upward == []


@pytest.mark.parametrize("app", LAYERS)
def test_an_apps_templates_name_no_app_above_it(app):
    templates = (ROOT / "templates" / app).rglob("*.html")
    upward = sorted(
        (str(path.relative_to(ROOT)), name)
        for path in templates
        for match in TEMPLATE_REFERENCE.finditer(path.read_text())
        for name in match.groups()
        if name in above(app)
    )
    assert upward == []

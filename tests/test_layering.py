"""The apps depend one way (docs/architecture.md): core <- customers <-
invoices <- billruns, then notifications, api and webhooks above billruns,
beside each other (api may use webhooks' services for its webhook routes);
billing_site wires them. A lower app never imports a higher one, and its
templates never include a higher app's template or name its URLs (a foreign
key upwards is a string)."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["core", "customers", "invoices", "billruns", "notifications", "api", "webhooks"]
# What each app may import of the others: the layers below it, and for the
# apps beside each other above billruns only what is listed here.
BESIDE = {"notifications": set(), "api": {"webhooks"}, "webhooks": set()}
LAYERS = [app for app in LAYERS if (ROOT / app).is_dir()]
# {% include "app/..." %}, {% extends "app/..." %}, {% url 'app:name' ... %}
TEMPLATE_REFERENCE = re.compile(r"""{%\s*(?:include|extends)\s+["'](\w+)/|{%\s*url\s+["'](\w+):""")


def above(app):
    higher = set(LAYERS[LAYERS.index(app) + 1 :]) | set(BESIDE) | {"billing_site"}
    return higher - BESIDE.get(app, set()) - {app}


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

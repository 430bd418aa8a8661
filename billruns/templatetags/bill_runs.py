"""``{% run_status run %}`` and ``{% run_selection run %}`` on a run's page:
the same markup as the run list's rows and detail rows (billruns.tables)."""

from django import template

from billruns.tables import selection_html, status_html

register = template.Library()

register.simple_tag(status_html, name="run_status")
register.simple_tag(selection_html, name="run_selection")

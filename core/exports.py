"""CSV and XLSX exports of the product's tables, bounded.

Every list and tab exports through django-tables2's ExportMixin with its
filter (INTERFACES.md: any table page + ``?_export=csv|xlsx``). An export is
built in the web request, so one of a million rows would hold a web worker
for minutes (measured: 0.15 ms a row for CSV, 0.3 ms for XLSX); past settings.EXPORT_MAX_ROWS the
export is refused with a message on the page, which asks for a narrower
filter. A whole run's documents are always available from
``manage.py billrun show NUMBER --json --documents``.
"""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django_tables2.export import ExportMixin

EXPORT_FORMATS = ("csv", "xlsx")


class BoundedExportMixin(ExportMixin):
    export_formats = EXPORT_FORMATS

    def create_export(self, export_format):
        table = self.get_table(**self.get_table_kwargs())
        limit = settings.EXPORT_MAX_ROWS
        rows = len(table.rows)
        if rows > limit:
            messages.error(
                self.request,
                f"This export would hold {rows:,} rows; an export holds at most {limit:,}. "
                "Narrow the filter and export again.",
            )
            query = self.request.GET.copy()
            query.pop(self.export_trigger_param, None)
            return redirect(
                f"{self.request.path}?{query.urlencode()}" if query else self.request.path
            )
        exporter = self.export_class(
            export_format=export_format,
            table=table,
            exclude_columns=self.exclude_columns,
            dataset_kwargs=self.get_dataset_kwargs(),
        )
        return exporter.response(filename=self.get_export_filename(export_format))

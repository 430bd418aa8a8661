"""An invoice or credit memo as a PDF, rendered by WeasyPrint from the same
sheet as its page (templates/invoices/_document_sheet.html).

WeasyPrint needs Pango (Debian: libpango-1.0-0, libpangoft2-1.0-0) at run
time. It is imported when a PDF is first asked for, not when Django starts,
so that a server without those libraries still serves every other page and
the PDF view can say what is missing (PdfUnavailable) instead of failing
with a traceback.
"""

from django.conf import settings
from django.template.loader import render_to_string

from invoices.models import Document, DocumentStatus
from invoices.selectors import document_items, document_taxes

# A Draft or Canceled document's PDF carries its status across every page and
# in its footer: a PDF travels alone, without the page's status badge.
PDF_MARKS = {DocumentStatus.DRAFT: "DRAFT", DocumentStatus.CANCELED: "CANCELED"}


class PdfUnavailable(Exception):
    """WeasyPrint or the system libraries it loads are missing."""


def _html_class():
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:
        # OSError: WeasyPrint is installed but cffi could not load Pango.
        raise PdfUnavailable(
            "PDF rendering is not available on this server: WeasyPrint could not be "
            f"loaded ({exc}). It needs the Pango libraries (Debian: libpango-1.0-0 "
            "libpangoft2-1.0-0)."
        ) from exc
    return HTML


def document_pdf_html(document: Document) -> str:
    """The HTML that ``document_pdf`` renders: the sheet on an A4 page."""
    return render_to_string(
        "invoices/document_print.html",
        {
            "document": document,
            "items": document_items(document),
            "taxes": document_taxes(document),
            "issuer": settings.BILLING_ISSUER,
            "mark": PDF_MARKS.get(document.status, ""),
        },
    )


def document_pdf(*, document: Document) -> bytes:
    """The PDF of ``document`` (an invoice or a credit memo). Reads only.

    Raises PdfUnavailable when WeasyPrint cannot be loaded.
    """
    html_class = _html_class()
    return html_class(string=document_pdf_html(document)).write_pdf()


def document_pdf_filename(document: Document) -> str:
    return f"{document.number}.pdf"

from django.urls import reverse_lazy


def document_links(request):
    """The documents' list, for the pages of lower apps that link to it (the
    account page's "All documents"): customers may not name this app's URLs.

    Lazy: reversed only by a page that renders it.
    """
    return {"document_list_url": reverse_lazy("invoices:list")}

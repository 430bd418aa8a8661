"""Admin actions on invoices and credit memos, for ``invoices/admin.py`` to register.

Each action calls the service, one document at a time, and reports in the
admin's messages what it did and what was refused and why.
"""

from django.contrib import admin, messages

from invoices.services import DocumentActionRefused, document_post

# How many refusals one message lists by name; the rest are counted.
REFUSALS_SHOWN = 10


@admin.action(description="Post selected draft documents", permissions=["post"])
def post_selected_documents(modeladmin, request, queryset):
    """Post each selected document with ``document_post``.

    Each document is posted in its own short transaction, so one refusal
    (already Posted, Canceled, a credit memo while Advanced AR Settlement is
    off) does not stop the others. Meant for a handful of documents picked by
    hand; a whole run is posted by the bill run's Post action.

    ``permissions=["post"]`` makes the admin show the action only when the
    ModelAdmin's ``has_post_permission(request)`` is true; it must check
    ``invoices.post_document``, as ``PostDocumentsAdminMixin`` does.
    """
    posted = 0
    refusals = []
    for document_id in queryset.order_by("pk").values_list("pk", flat=True):
        try:
            document_post(document_id=document_id, user=request.user)
        except DocumentActionRefused as refused:
            refusals.append(str(refused))
        else:
            posted += 1
    if posted:
        modeladmin.message_user(
            request,
            f"Posted {posted} document{'s' if posted != 1 else ''}.",
            messages.SUCCESS,
        )
    if refusals:
        shown = " ".join(refusals[:REFUSALS_SHOWN])
        more = len(refusals) - REFUSALS_SHOWN
        if more > 0:
            shown += f" And {more} more refused."
        modeladmin.message_user(
            request,
            f"{len(refusals)} not posted: {shown}",
            messages.WARNING,
        )


class PostDocumentsAdminMixin:
    """For the Document, Invoice and CreditMemo ModelAdmins: the permission
    behind ``post_selected_documents``."""

    def has_post_permission(self, request):
        return request.user.has_perm("invoices.post_document")

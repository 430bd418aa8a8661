"""Admin actions on invoices and credit memos, for ``invoices/admin.py`` to register.

Each action calls the service, one document at a time, and reports in the
admin's messages what it did and what was refused and why.
"""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils import timezone

from invoices.models import DocumentStatus
from invoices.services import DocumentActionRefused, document_post

# How many refusals one message lists by name; the rest are counted.
REFUSALS_SHOWN = 10
# How many of the selected documents the confirmation page lists.
CONFIRMATION_ROWS_SHOWN = 100


@admin.action(description="Post selected draft documents", permissions=["post"])
def post_selected_documents(modeladmin, request, queryset):
    """Ask for a confirmation, as Django's delete_selected does; post only
    when the confirmation page's form comes back (``post=yes``).

    ``permissions=["post"]`` makes the admin show the action only when the
    ModelAdmin's ``has_post_permission(request)`` is true; it must check
    ``invoices.post_document``, as ``PostDocumentsAdminMixin`` does.
    """
    if request.POST.get("post") != "yes":
        return _confirmation_page(modeladmin, request, queryset)
    return _post_documents(modeladmin, request, queryset)


def _confirmation_page(modeladmin, request, queryset):
    """What posting would do: the drafts to post, the others left as they are.

    The page sends back the ids that were ticked and, with "select all",
    ``select_across``: it posts to the same address, so the list's filters
    choose the documents again."""
    opts = modeladmin.model._meta
    drafts = queryset.filter(status=DocumentStatus.DRAFT)
    draft_count = drafts.count()
    selected_count = queryset.count()
    select_across = request.POST.get("select_across") == "1"
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Post the selected documents?",
        "opts": opts,
        "media": modeladmin.media,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "select_across": select_across,
        "selected_ids": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "drafts": drafts.select_related("account").order_by("pk")[:CONFIRMATION_ROWS_SHOWN],
        "draft_count": draft_count,
        "drafts_not_shown": max(draft_count - CONFIRMATION_ROWS_SHOWN, 0),
        "others_count": selected_count - draft_count,
        "past_due_count": drafts.filter(due_date__lt=timezone.localdate()).count(),
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/invoices/post_selected_confirmation.html", context)


def _post_documents(modeladmin, request, queryset):
    """Post each selected document with ``document_post``.

    Each document is posted in its own short transaction, so one refusal
    (already Posted, Canceled, a credit memo while Advanced AR Settlement is
    off) does not stop the others. Meant for a handful of documents picked by
    hand; a whole run is posted by the bill run's Post action.
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

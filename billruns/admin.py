"""Operators' admin for bill runs.

Runs, their chunks, failures and events are written only by the bill run
services (create, post, cancel, delete each lock the run and record an
event); the admin shows them and changes nothing. Schedules too change only
through their services.
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.html import format_html

from billruns.models import (
    BillRun,
    BillRunChunk,
    BillRunEvent,
    BillRunFailure,
    Schedule,
    ScheduleEvent,
)
from core.admin import ProtectedDeleteMixin, ReadOnlyAdminMixin, ReadOnlyInline

# A run over 100,000 accounts can have thousands of failures and hundreds of
# chunks; its page shows the first ones and links to the full, paginated list.
INLINE_ROWS_SHOWN = 100


class FirstRowsFormSet(BaseInlineFormSet):
    def get_queryset(self):
        return super().get_queryset()[:INLINE_ROWS_SHOWN]


class BillRunEventInline(ReadOnlyInline):
    model = BillRunEvent
    fields = ["at", "from_status", "to_status", "user", "note"]
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


class BillRunFailureInline(ReadOnlyInline):
    model = BillRunFailure
    formset = FirstRowsFormSet
    fields = ["account", "subscription", "reason"]
    verbose_name_plural = f"failed accounts or subscriptions (first {INLINE_ROWS_SHOWN})"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account", "subscription")


class BillRunChunkInline(ReadOnlyInline):
    model = BillRunChunk
    formset = FirstRowsFormSet
    # Not account_ids: a chunk's list of ids is long and says little here.
    fields = ["index", "status", "account_count", "attempts", "leased_at", "finished_at", "cluster"]
    verbose_name_plural = f"chunks (first {INLINE_ROWS_SHOWN})"


class ScheduleEventInline(ReadOnlyInline):
    model = ScheduleEvent
    formset = FirstRowsFormSet
    fk_name = "schedule"
    fields = ["at", "kind", "user", "bill_run", "detail"]
    verbose_name_plural = f"history (latest {INLINE_ROWS_SHOWN})"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "bill_run")


@admin.register(BillRun)
class BillRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "number",
        "status",
        "preview",
        "has_errors",
        "target_date",
        "invoice_date",
        "account",
        "schedule",
        "created_by",
        "accounts_processed",
        "accounts_failed",
        "invoices_count",
        "credit_memos_count",
        "created_at",
    ]
    list_filter = ["status", "preview", "has_errors", "auto_post"]
    list_select_related = ["account", "schedule", "created_by"]
    search_fields = ["number", "account__number", "schedule__name"]
    date_hierarchy = "created_at"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "number",
                    "status",
                    "preview",
                    "has_errors",
                    "error_message",
                    "last_post_error",
                ]
            },
        ),
        (
            "Selection",
            {
                "fields": [
                    "target_date",
                    "invoice_date",
                    "selection",
                    "auto_post",
                    "auto_email",
                    "no_email_for_zero_amount",
                    "excluded_charge_types",
                    "schedule",
                    "occurrence",
                    "retry_of",
                ]
            },
        ),
        (
            "Results",
            {
                "fields": [
                    "accounts_selected",
                    "accounts_processed",
                    "accounts_failed",
                    "invoices_count",
                    "credit_memos_count",
                    "totals",
                    "all_failures",
                    "documents",
                ]
            },
        ),
        (
            "History",
            {
                "fields": [
                    "created_by",
                    "created_at",
                    "started_at",
                    "completed_at",
                    "posted_by",
                    "posted_at",
                    "canceled_by",
                    "canceled_at",
                    "heartbeat_at",
                ]
            },
        ),
    ]
    readonly_fields = ["selection", "excluded_charge_types", "all_failures", "documents"]
    inlines = [BillRunEventInline, BillRunFailureInline, BillRunChunkInline]

    @admin.display(description="Selection")
    def selection(self, run):
        return run.selection_label

    @admin.display(description="Excluded charge types")
    def excluded_charge_types(self, run):
        return run.exclude_charge_types_label

    @admin.display(description="Failures")
    def all_failures(self, run):
        url = reverse("admin:billruns_billrunfailure_changelist")
        return format_html('<a href="{}?bill_run__id__exact={}">All failures</a>', url, run.pk)

    @admin.display(description="Documents")
    def documents(self, run):
        return format_html(
            '<a href="{}?bill_run__id__exact={}">Invoices</a> · '
            '<a href="{}?bill_run__id__exact={}">Credit memos</a>',
            reverse("admin:invoices_invoice_changelist"),
            run.pk,
            reverse("admin:invoices_creditmemo_changelist"),
            run.pk,
        )


@admin.register(BillRunChunk)
class BillRunChunkAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "bill_run",
        "index",
        "status",
        "account_count",
        "attempts",
        "leased_at",
        "finished_at",
        "cluster",
    ]
    list_filter = ["status"]
    list_select_related = ["bill_run"]
    search_fields = ["bill_run__number", "cluster"]
    show_full_result_count = False


@admin.register(BillRunFailure)
class BillRunFailureAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["bill_run", "account", "subscription", "reason", "created_at"]
    list_select_related = ["bill_run", "account", "subscription"]
    search_fields = ["bill_run__number", "account__number", "subscription__number", "reason"]
    raw_id_fields = ["bill_run", "account", "subscription"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(BillRunEvent)
class BillRunEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["bill_run", "from_status", "to_status", "user", "at", "note"]
    list_filter = ["to_status"]
    list_select_related = ["bill_run", "user"]
    search_fields = ["bill_run__number", "user__username", "note"]
    raw_id_fields = ["bill_run", "user"]
    date_hierarchy = "at"
    show_full_result_count = False


@admin.register(Schedule)
class ScheduleAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: schedules are written through billruns.schedules (from the
    schedule pages), which keep next_run_at in step with the repeat rules; an
    edit here would leave it stale."""

    list_display = [
        "name",
        "owner",
        "status",
        "repeats",
        "run_time",
        "time_zone",
        "bill_cycle_day",
        "auto_post",
        "next_run_at",
    ]
    list_filter = ["status", "repeats", "auto_post"]
    list_select_related = ["owner"]
    search_fields = ["name", "owner__username"]
    date_hierarchy = "created_at"
    inlines = [ScheduleEventInline]


@admin.register(ScheduleEvent)
class ScheduleEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["at", "schedule", "kind", "user", "bill_run"]
    list_filter = ["kind"]
    list_select_related = ["schedule", "user", "bill_run"]
    search_fields = ["schedule__name", "user__username", "bill_run__number", "detail"]
    raw_id_fields = ["schedule", "user", "bill_run"]
    date_hierarchy = "at"
    show_full_result_count = False


# Runs, their history and documents name the users who acted (PROTECT): the
# user's delete page says so, rather than that the operator may not delete
# bill runs. Deactivate such a user instead.
User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class ProtectedUserAdmin(ProtectedDeleteMixin, UserAdmin):
    pass

from django.contrib import admin

from notifications.models import EmailDelivery, RunNotification


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "bill_run",
        "outcome",
        "to_address",
        "recipient",
        "status",
        "attempts",
        "last_attempt_at",
        "sent_at",
        "short_error",
    ]
    list_filter = ["status", "outcome", "created_at"]
    search_fields = ["bill_run__number", "to_address", "recipient__username", "last_error"]
    list_select_related = ["bill_run", "recipient"]
    raw_id_fields = ["bill_run", "recipient"]
    date_hierarchy = "created_at"
    # The record of what happened: kept as the sender wrote it.
    readonly_fields = [
        "bill_run",
        "recipient",
        "to_address",
        "outcome",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "last_attempt_at",
        "next_attempt_at",
        "sent_at",
    ]

    @admin.display(description="Last error")
    def short_error(self, obj):
        return obj.last_error[:80]

    def has_add_permission(self, request):
        return False


@admin.register(RunNotification)
class RunNotificationAdmin(admin.ModelAdmin):
    list_display = ["bill_run", "outcome", "user", "created_at", "read_at"]
    list_filter = ["outcome", ("read_at", admin.EmptyFieldListFilter)]
    search_fields = ["bill_run__number", "user__username"]
    list_select_related = ["bill_run", "user"]
    raw_id_fields = ["bill_run", "user"]

    def has_add_permission(self, request):
        return False

"""Operators' admin of webhooks: endpoints (created through
``services.endpoint_create``, the secret shown once), their events and
delivery attempts read-only, *send again* and *enable again* actions."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from core.admin import ReadOnlyAdminMixin, ReadOnlyInline
from webhooks import services
from webhooks.models import DeliveryAttempt, DisabledEmail, Endpoint, Event, EventType


class EndpointCreateForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=EventType.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Endpoint
        fields = ["url", "events", "owner"]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        # The service's checks (scheme, private addresses, events), as the
        # API runs them; the endpoint itself is created in save_model.
        try:
            services.clean_url(cleaned.get("url"))
            services.clean_events(list(cleaned.get("events") or []))
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                for problem in problems:
                    self.add_error(field, problem)
        return cleaned


class EndpointChangeForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=EventType.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Endpoint
        fields = ["events", "owner"]

    def clean_events(self):
        try:
            return services.clean_events(list(self.cleaned_data["events"]))
        except ValidationError as error:
            raise ValidationError(error.message_dict["events"]) from None


class AttemptInline(ReadOnlyInline):
    model = DeliveryAttempt
    fields = ["attempted_at", "event_type", "event_id", "status_code", "duration_ms", "error"]
    ordering = ["-attempted_at", "-id"]
    show_change_link = False

    def get_queryset(self, request):
        # The latest few: an endpoint down for days has hundreds.
        ids = list(
            super()
            .get_queryset(request)
            .order_by("-attempted_at", "-id")
            .values_list("id", flat=True)[:50]
        )
        return DeliveryAttempt.objects.filter(pk__in=ids)


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "event_list", "owner", "created_at", "disabled_at", "failing_since"]
    list_filter = [("disabled_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["url", "owner__username"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    readonly_fields = ["url", "secret_hint", "created_at", "disabled_at", "failing_since"]
    inlines = [AttemptInline]
    actions = ["enable_again"]

    @admin.display(description="Events")
    def event_list(self, obj):
        return ", ".join(obj.events)

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = EndpointCreateForm if obj is None else EndpointChangeForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["url", "events", "owner"]
        return [
            "url",
            "events",
            "owner",
            "secret_hint",
            "created_at",
            "disabled_at",
            "failing_since",
        ]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        endpoint, secret = services.endpoint_create(
            url=form.cleaned_data["url"],
            events=list(form.cleaned_data["events"]),
            owner=form.cleaned_data.get("owner") or request.user,
        )
        obj.pk = endpoint.pk
        obj.refresh_from_db()
        messages.warning(
            request,
            f"The signing secret of {endpoint.url} is {secret} — copy it now: "
            "it is not shown again.",
        )

    def delete_model(self, request, obj):
        services.endpoint_delete(obj)

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            services.endpoint_delete(endpoint)

    @admin.action(description="Enable the selected endpoints again", permissions=["change"])
    def enable_again(self, request, queryset):
        enabled = 0
        for endpoint in queryset.filter(disabled_at__isnull=False):
            services.endpoint_enable(endpoint)
            enabled += 1
        messages.success(request, f"Enabled {enabled} endpoint(s); their pending events are due.")


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "event_id",
        "event_type",
        "endpoint",
        "created",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "event_type", "created"]
    search_fields = ["event_id", "subject", "endpoint__url"]
    list_select_related = ["endpoint"]
    date_hierarchy = "created"
    fields = [
        "event_id",
        "event_type",
        "subject",
        "endpoint",
        "created",
        "status",
        "attempts",
        "next_attempt_at",
        "last_attempt_at",
        "delivered_at",
        "last_error",
        "body",
    ]
    readonly_fields = fields
    actions = ["send_again"]

    def has_change_permission(self, request, obj=None):
        # Read-only, but the list's action needs the change permission.
        return obj is None and request.user.has_perm("webhooks.change_event")

    @admin.action(description="Send the selected events again", permissions=["change"])
    def send_again(self, request, queryset):
        count = services.events_send_again(list(queryset))
        messages.success(request, f"{count} event(s) queued to be sent again, with the same ids.")


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "attempted_at",
        "endpoint",
        "event_type",
        "event_id",
        "status_code",
        "duration_ms",
        "short_error",
    ]
    list_filter = ["event_type", "status_code", "attempted_at"]
    search_fields = ["event_id", "endpoint__url", "error"]
    list_select_related = ["endpoint"]
    date_hierarchy = "attempted_at"
    fields = [
        "attempted_at",
        "endpoint",
        "outbox",
        "event_type",
        "event_id",
        "status_code",
        "duration_ms",
        "error",
    ]
    readonly_fields = fields

    @admin.display(description="Error")
    def short_error(self, obj):
        return obj.error[:80]


@admin.register(DisabledEmail)
class DisabledEmailAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["endpoint", "disabled_at", "to_address", "status", "attempts", "sent_at"]
    list_filter = ["status"]
    list_select_related = ["endpoint"]

"""API keys in the admin: made there (the key shown once, on the page that
follows) and revoked there; never edited."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from api.keys import ApiKeyRefused, api_key_create, api_key_revoke
from api.models import ApiKey, Role


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "role"]

    def clean(self):
        cleaned = super().clean()
        name = cleaned.get("name")
        if name and ApiKey.objects.filter(name=name).exists():
            raise ValidationError("The name is taken: a key's name is never reused.")
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "role", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["role"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "user", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return ["name", "role"] if obj is None else ["name", "role", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["name", "role", *self.readonly_fields]

    def has_delete_permission(self, request, obj=None):
        # A key's user is named on what it did: revoke it, never delete it.
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            key, raw = api_key_create(name=obj.name, role=obj.role)
        except ApiKeyRefused as refused:
            raise ValidationError(str(refused)) from refused
        obj.pk = key.pk
        obj.__dict__.update(ApiKey.objects.filter(pk=key.pk).values()[0])
        messages.warning(
            request,
            f"The key of {key.name} ({Role(key.role).label}) is {raw} — copy it now: "
            "it is shown only this once and stored only as a hash.",
        )

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            api_key_revoke(name=key.name)
        messages.success(request, f"Revoked {queryset.count()} keys.")

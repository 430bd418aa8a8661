from django import template

from core.tables import upload_status_badge

register = template.Library()


@register.simple_tag
def upload_status(upload):
    """An uploaded import file's status badge, with a hook for browser tests."""
    return upload_status_badge(upload.status, testid="upload-status")

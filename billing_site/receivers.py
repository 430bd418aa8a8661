"""Site-wide signal receivers."""

from django.contrib import messages
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver


@receiver(user_logged_out, dispatch_uid="billing_site.say_signed_out")
def say_signed_out(sender, request, user, **kwargs):
    # The session is flushed before the signal; the message goes in the new one.
    if request is not None and hasattr(request, "_messages"):
        messages.info(request, "You are signed out.")

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET

from notifications import services
from notifications.models import RunNotification


@require_GET
@login_required
def notification_open(request, pk):
    # Only the owner's notice: someone else's is a 404, not a 403, so its
    # existence is not revealed.
    notification = get_object_or_404(
        RunNotification.objects.select_related("bill_run"), pk=pk, user=request.user
    )
    services.notification_mark_read(notification=notification)
    return redirect("billruns:detail", notification.bill_run.number)

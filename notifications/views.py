from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

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


@require_POST
@login_required
def notifications_mark_all_read_view(request):
    # Any signed-in user, for their own notices only: no model permission,
    # as opening a notice needs none.
    count = services.notifications_mark_all_read(user=request.user)
    if count:
        messages.success(request, f"{count} notification{'s' if count != 1 else ''} marked read.")
    else:
        messages.info(request, "No unread notifications.")
    # Back to the page the header was on: only a path of this site, never
    # another host (an open redirect) nor a name redirect() would look up.
    back = request.POST.get("next", "")
    if back.startswith("/") and url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return HttpResponseRedirect(back)
    return redirect("billruns:list")

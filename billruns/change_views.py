"""A subscription's change forms (INTERFACES.md, Pages:
``/billing/subscriptions/<number>/...``): add a charge, change a price or
quantity, remove a charge, cancel the subscription.

They are billruns' pages rather than customers' because the preview they
show before the clerk confirms is the engine's own computation
(billruns/changes.py); billing_site mounts them beside the subscription
page. A POST with ``action=preview`` shows what the next run will make and
changes nothing; ``action=confirm`` applies the change previewed (through
``customers.changes.changes_apply``, as ``amend``) and returns to the
subscription page. A refused change shows the rule's message on the form.
"""

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views import View

from billruns import change_forms
from billruns.changes import PreviewChanged, subscription_change_make
from billruns.engine import AccountComputationError
from customers.changes import ChangesRefused, change_requests
from customers.changes.summary import change_summary
from customers.importer.problems import Problems
from customers.models import Status, Subscription

# Who may change a subscription: the permission to make a SubscriptionChange
# (customers 0013_roles_subscription_changes gives it to billing clerks;
# viewers only view changes). The admin's permission to edit an account or a
# charge row is another thing: a change is a row of its own, never an edit.
CHANGE_PERMISSION = "customers.add_subscriptionchange"


class SubscriptionChangeView(PermissionRequiredMixin, View):
    permission_required = CHANGE_PERMISSION
    template_name = "billruns/subscription_change.html"
    form_class: type[change_forms.ChangeForm]
    title = ""
    intro = ""
    confirm_label = "Confirm change"

    def subscription(self, number):
        return get_object_or_404(Subscription.objects.select_related("account"), number=number)

    def get(self, request, number):
        subscription = self.subscription(number)
        initial = {"charge": request.GET.get("charge", "")}
        form = self.form_class(subscription=subscription, initial=initial)
        return self.render(subscription, form)

    def post(self, request, number):
        subscription = self.subscription(number)
        form = self.form_class(request.POST, subscription=subscription)
        if not form.is_valid():
            return self.render(subscription, form, status=400)
        problems = Problems()
        requests = change_requests({"changes": [form.change()]}, problems)
        if problems.count:
            self.show_problems(form, problems.first)
            return self.render(subscription, form, status=400)
        confirm = (
            request.POST.get("digest", "") if request.POST.get("action") == "confirm" else None
        )
        try:
            preview = subscription_change_make(
                request=requests[0],
                user=request.user,
                today=timezone.localdate(),
                confirm=confirm,
            )
        except ChangesRefused as refused:
            self.show_problems(form, refused.lines())
            return self.render(subscription, form, status=400)
        except AccountComputationError as exc:
            form.add_error(None, f"The next bill run could not bill this account: {exc}")
            return self.render(subscription, form, status=400)
        except PreviewChanged as changed:
            messages.warning(
                request,
                "What the next bill run makes for this change is not what the preview showed "
                "(a run or another change came in between, or the form was sent twice): "
                "nothing was applied. Check the new preview and confirm again.",
            )
            return self.render(subscription, form, preview=changed.preview, status=409)
        if not preview.applied:
            return self.render(subscription, form, preview=preview)
        messages.success(
            request,
            f"{change_summary(preview.changes[0])}. The next bill run "
            f"(target date {preview.target_date:%Y-%m-%d} or later) makes "
            f"{len(preview.adjustments)} adjustments and {len(preview.pieces)} new items for it.",
        )
        return redirect(subscription.get_absolute_url())

    @staticmethod
    def show_problems(form, lines):
        """Each problem on the field it is about, without its JSON path;
        else on the form."""
        for line in lines:
            path, _, message = line.partition(": ")
            field = form.field_for(path) if message else None
            form.add_error(field, message or line)

    def render(self, subscription, form, *, preview=None, status=200):
        notices = []
        account = subscription.account
        if subscription.status != Status.ACTIVE or account.status != Status.ACTIVE:
            notices.append(
                f"{subscription.number} is {subscription.status} and its account "
                f"{account.number} {account.status}: the rules refuse any change to it."
            )
        context = {
            "subscription": subscription,
            "form": form,
            "preview": preview,
            "title": self.title,
            "intro": self.intro,
            "confirm_label": self.confirm_label,
            "notices": notices,
            "selected_charge": getattr(form, "selected_charge", lambda: None)(),
        }
        return render(self.request, self.template_name, context, status=status)


class AddChargeView(SubscriptionChangeView):
    form_class = change_forms.AddChargeForm
    title = "Add charge"
    intro = (
        "A new charge bills from its start like any charge, catch-up included. "
        "Recurring and one-time charges take an amount (and quantity); usage charges a unit "
        "and a pricing."
    )
    confirm_label = "Add charge"


class ChangePriceView(SubscriptionChangeView):
    form_class = change_forms.ChangePriceForm
    title = "Change price or quantity"
    intro = (
        "From the effective date the charge bills at the new terms. What was billed after that "
        "date is corrected by the next bill run with adjustment items."
    )
    confirm_label = "Change the price"


class RemoveChargeView(SubscriptionChangeView):
    form_class = change_forms.RemoveChargeForm
    title = "Remove charge"
    intro = (
        "The charge ends on the effective date; what was billed after it is credited by the "
        "next bill run."
    )
    confirm_label = "Remove the charge"


class CancelSubscriptionView(SubscriptionChangeView):
    form_class = change_forms.CancelSubscriptionForm
    title = "Cancel subscription"
    intro = (
        "Every recurring and usage charge ends on the cancel date; what was billed after it is "
        "credited by the next bill run. The subscription becomes Canceled."
    )
    confirm_label = "Cancel the subscription"

"""Creating a bill run: its parameters checked again, a Pending run written,
its start queued after commit."""

import datetime

from django.db import IntegrityError, transaction

from billruns.models import BillRun, BillRunEvent, RunStatus
from billruns.services.common import BillRunActionRefused, _enqueue
from core.dates import date_range_problem, parse_date
from customers.models import Account, ChargeType, Status, Subscription
from invoices import sequences


class InvalidRunParameters(BillRunActionRefused):
    """Bad parameters for a new run; ``errors`` maps field names to messages."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__(
            "; ".join(
                message if field == "__all__" else f"{field}: {message}"
                for field, messages in errors.items()
                for message in messages
            )
        )


DATE_LABELS = {"target_date": "The target date", "invoice_date": "The invoice date"}


def _parse_date(value, field, errors):
    """A date (or ``YYYY-MM-DD``) between 2000-01-01 and 2099-12-31, or None
    after adding the reason to ``errors``."""
    if isinstance(value, datetime.datetime):
        value = value.date()
    try:
        if isinstance(value, datetime.date):
            problem = date_range_problem(value)
            if problem:
                raise ValueError(f"{DATE_LABELS[field]} {problem}")
            return value
        return parse_date(str(value).strip(), label=DATE_LABELS[field])
    except ValueError as exc:
        errors.setdefault(field, []).append(f"{exc}.")
        return None


def _parse_int_list(values, field, low, high, errors, label):
    parsed = []
    for value in values:
        try:
            number = int(str(value).strip())
        except (TypeError, ValueError):
            errors.setdefault(field, []).append(f"{value!r} is not a whole number.")
            continue
        if not low <= number <= high:
            errors.setdefault(field, []).append(
                f"{label} must be between {low} and {high}, not {number}."
            )
            continue
        parsed.append(number)
    return sorted(set(parsed))


# The values a run may exclude (BILLING_RULES.md, "exclude charge types"),
# as the messages list them.
CHARGE_TYPE_VALUES = sorted(ChargeType.values)


def charge_types_to_exclude(values) -> tuple[list[str], list[str]]:
    """The charge types ``values`` names, distinct and sorted (how runs and
    schedules store them), and what is wrong with the others, for a person.

    A lone string is refused rather than read letter by letter: it is a
    caller's mistake (``"usage"`` for ``["usage"]``)."""
    allowed = ", ".join(CHARGE_TYPE_VALUES)
    if isinstance(values, str) or not hasattr(values, "__iter__"):
        return [], [f"Give a list of charge types ({allowed}), not {values!r}."]
    types, problems = set(), []
    for value in values:
        text = value.strip() if isinstance(value, str) else value
        if text in CHARGE_TYPE_VALUES:
            types.add(str(text))
        else:
            problems.append(f"{value!r} is not a charge type; the charge types are {allowed}.")
    return sorted(types), problems


# The options a preview refuses (it is never posted or emailed), with what
# the refusal says a preview cannot do.
PREVIEW_EXCLUDES = (
    ("auto_post", "auto-post"),
    ("auto_email", "auto-email"),
    ("no_email_for_zero_amount", "skip emails for zero amounts"),
)


def bill_run_create(
    *,
    target_date,
    invoice_date=None,
    batches=(),
    bill_cycle_days=(),
    account=None,
    subscriptions=(),
    auto_post=False,
    auto_email=False,
    no_email_for_zero_amount=False,
    exclude_charge_types=(),
    created_by=None,
    schedule=None,
    occurrence=None,
    retry_of=None,
    request_key=None,
    preview=False,
    preview_note="",
    enqueue=True,
) -> BillRun:
    """Create a Pending run and, unless ``enqueue`` is false, queue it.

    Every parameter is checked first; any problem raises InvalidRunParameters
    and nothing is created. ``account`` and ``subscriptions`` take numbers or
    model instances. ``exclude_charge_types`` names the charge types the run
    does not bill (``one_time``, ``recurring``, ``usage``): their pieces stay
    due for a later run. ``request_key`` makes a repeated request (a double
    submit) return the run the first one made, whatever its parameters.
    ``preview`` makes a preview (INTERFACES.md, Previews): it cannot
    auto-post or email, so those options are refused with it.

    Transaction: one, for the run, its selection and its creation event; the
    task is queued after it commits.
    """
    if request_key:
        existing = BillRun.objects.filter(request_key=request_key).first()
        if existing:
            return existing
    errors = {}
    target = _parse_date(target_date, "target_date", errors)
    # Only None means "the target date": an empty value is a mistake (a
    # script's empty variable), not a choice. The invoice date may be before
    # or after the target date (INTERFACES.md, "Numbers and dates").
    invoice = target if invoice_date is None else _parse_date(invoice_date, "invoice_date", errors)
    batch_list = _parse_int_list(batches, "batches", 1, 50, errors, "A batch")
    day_list = _parse_int_list(
        bill_cycle_days, "bill_cycle_days", 1, 31, errors, "A bill cycle day"
    )

    excluded, problems = charge_types_to_exclude(exclude_charge_types)
    if problems:
        errors["exclude_charge_types"] = problems

    account_obj = None
    subscription_objs = []
    # Only None means "no account": an empty number (a script's empty
    # variable) must not select every account.
    if isinstance(account, str) and not account.strip():
        errors.setdefault("account", []).append("Enter the account number.")
    elif account is not None:
        if batch_list or day_list:
            errors.setdefault("__all__", []).append(
                "Select either one account or batches and bill cycle days, not both."
            )
        account_obj = (
            account
            if isinstance(account, Account)
            else Account.objects.filter(number=str(account).strip()).first()
        )
        if account_obj is None:
            errors.setdefault("account", []).append(f"No account has the number {account!r}.")
        elif account_obj.status != Status.ACTIVE:
            errors.setdefault("account", []).append(
                f"Account {account_obj.number} is {account_obj.status}; "
                "only Active accounts are billed."
            )
    for subscription in subscriptions:
        if account is None:
            errors.setdefault("subscriptions", []).append(
                "Subscriptions can be chosen only together with their account."
            )
            break
        sub = (
            subscription
            if isinstance(subscription, Subscription)
            else Subscription.objects.filter(number=str(subscription).strip()).first()
        )
        if sub is None:
            errors.setdefault("subscriptions", []).append(
                f"No subscription has the number {subscription!r}."
            )
        elif account_obj is not None and sub.account_id != account_obj.id:
            errors.setdefault("subscriptions", []).append(
                f"Subscription {sub.number} belongs to account {sub.account.number}, "
                f"not to {account_obj.number}."
            )
        elif sub.status != Status.ACTIVE:
            errors.setdefault("subscriptions", []).append(
                f"Subscription {sub.number} is {sub.status}; only Active subscriptions are billed."
            )
        else:
            subscription_objs.append(sub)
    if preview:
        if retry_of is not None:
            errors.setdefault("preview", []).append("A retry cannot be a preview.")
        chosen = {
            "auto_post": auto_post,
            "auto_email": auto_email,
            "no_email_for_zero_amount": no_email_for_zero_amount,
        }
        for option, label in PREVIEW_EXCLUDES:
            if chosen[option]:
                errors.setdefault(option, []).append(
                    f"A preview cannot {label}: it is never posted or emailed."
                )
    if errors:
        raise InvalidRunParameters(errors)

    try:
        with transaction.atomic():
            run = BillRun.objects.create(
                number=sequences.allocate("BR")[0],
                target_date=target,
                invoice_date=invoice,
                account=account_obj,
                batches=batch_list,
                bill_cycle_days=day_list,
                auto_post=auto_post,
                auto_email=auto_email,
                no_email_for_zero_amount=no_email_for_zero_amount,
                exclude_charge_types=excluded,
                created_by=created_by,
                schedule=schedule,
                occurrence=occurrence,
                retry_of=retry_of,
                request_key=request_key or None,
                preview=bool(preview),
            )
            if subscription_objs:
                run.subscriptions.set(subscription_objs)
            BillRunEvent.objects.create(
                bill_run=run,
                from_status="",
                to_status=RunStatus.PENDING,
                user=created_by,
                at=run.created_at,
                note="Retry of " + retry_of.number
                if retry_of
                else (preview_note or "Preview" if preview else ""),
            )
            if enqueue:
                _enqueue("billruns.tasks.start_bill_run", run.pk)
    except IntegrityError:
        # A concurrent request with the same key (or schedule occurrence) won.
        if request_key:
            return BillRun.objects.get(request_key=request_key)
        if schedule is not None and occurrence is not None:
            return BillRun.objects.get(schedule=schedule, occurrence=occurrence)
        raise
    return run


def bill_run_create_from_preview(*, preview, created_by, request_key=None) -> BillRun:
    """The real run with the parameters of ``preview`` (its *Create this
    run*): the same dates, selection and excluded charge types; created and
    queued as ``bill_run_create`` does, and checked again (an account closed
    since is refused). ``preview`` stays as it is."""
    if not preview.preview:
        raise BillRunActionRefused(f"{preview.number} is not a preview.")
    return bill_run_create(
        target_date=preview.target_date,
        invoice_date=preview.invoice_date,
        batches=preview.batches,
        bill_cycle_days=preview.bill_cycle_days,
        account=preview.account,
        subscriptions=list(preview.subscriptions.order_by("id")),
        exclude_charge_types=preview.exclude_charge_types,
        created_by=created_by,
        request_key=request_key,
    )

"""The API's views (INTERFACES.md, HTTP API; docs/api.md). Each calls the
service the page or command of the same action calls, with the key's user
as who acts, and checks the permission that page checks."""

import csv
import io
import re

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, transaction
from django.db.models import Prefetch, Subquery
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers as s
from api.errors import Invalid, NotFound, Refused, TooLarge
from api.idempotency import idempotent
from api.pagination import KeysetPagination
from api.parsers import max_body_bytes
from api.renderers import RawJSONRenderer
from billruns import selectors, services
from billruns.models import BillRun, BillRunFailure, RunStatus
from core import locks
from customers.changes import ChangesRefused, change_requests, changes_apply
from customers.importer import ImportRefused, accounts_import
from customers.importer.problems import Problems
from customers.models import (
    Account,
    AccountTaxCode,
    Charge,
    Status,
    Subscription,
    SubscriptionChange,
)
from customers.services import AccountChangeRefused, account_change
from invoices.models import Document, DocumentStatus, DocumentType, Payment
from invoices.pdf import PdfUnavailable, document_pdf, document_pdf_filename
from invoices.services import DocumentActionRefused, payment_record
from invoices.usage import QUANTITY_PATTERN, UsageImportRefused, usage_import
from webhooks import services as webhook_services
from webhooks.models import DeliveryAttempt, Endpoint

# The permission each run action needs: the command's and the pages' (billrun.py).
RUN_PERMISSIONS = {
    "post": "billruns.post_billrun",
    "cancel": "billruns.cancel_billrun",
    "retry": "billruns.retry_billrun",
    "email": "billruns.email_billrun",
}
OBJECT = OpenApiTypes.OBJECT
ERRORS = {
    code: OpenApiResponse(OBJECT, description=f"error {code}")
    for code in (400, 401, 403, 404, 409, 413, 422, 429)
}
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="the same key and body within 24 h answer the first response again",
)


def _problem_fields(problems, prefix_pattern, replacement=""):
    """Import-style problems ("accounts[0].name: message") as the error's
    fields, their paths made relative to the request's body."""
    fields = {}
    for problem in problems:
        path, _, message = problem.partition(": ")
        path = re.sub(prefix_pattern, replacement, path) or "__all__"
        fields.setdefault(path.lstrip("."), []).append(message)
    return fields


class ApiView(APIView):
    """Every API view: the key's role must hold ``permissions[method]``."""

    permissions: dict = {}
    descending = False

    def required_permission(self, request):
        """The permission ``request`` needs; None for a method the view does
        not answer (405 follows) and for the root (a key is enough)."""
        method = "GET" if request.method in ("HEAD", "OPTIONS") else request.method
        return self.permissions.get(method)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # A body over the limit is refused before anything is looked up (the
        # parser refuses one without a Content-Length as it reads it).
        length = request.META.get("CONTENT_LENGTH") or "0"
        limit = max_body_bytes()
        if length.isdigit() and int(length) > limit:
            raise TooLarge(f"The request body is larger than {limit:,} bytes.")

    def body(self, serializer_class):
        serializer = serializer_class(data=request_data(self.request))
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def page(self, queryset, represent):
        paginator = KeysetPagination()
        rows = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(represent(rows))


def request_data(request):
    """The parsed body; an empty body is an empty object."""
    data = request.data
    if hasattr(data, "dict") and not data:
        return {}
    return data


def _choice(request, name, choices):
    value = request.query_params.get(name)
    if value is not None and value not in choices:
        raise Invalid(
            f"{name} is one of {', '.join(choices)}, not {value[:40]!r}.",
            fields={name: [f"One of {', '.join(choices)}."]},
        )
    return value


def _whole(request, name, low, high):
    value = request.query_params.get(name)
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise Invalid(
            f"{name} is a whole number from {low} to {high}, not {value[:40]!r}.",
            fields={name: [f"A whole number from {low} to {high}."]},
        )
    return int(value)


def _date_param(request, name):
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return s.DateStringField().to_internal_value(value)
    except Exception:
        raise Invalid(
            f"{name} is a date YYYY-MM-DD from 2000-01-01 to 2099-12-31, not {value[:40]!r}.",
            fields={name: ["A date YYYY-MM-DD."]},
        ) from None


# --- the root ----------------------------------------------------------------------


class RootView(ApiView):
    permissions = {"GET": None}

    @extend_schema(responses={200: OBJECT}, summary="Who the key is")
    def get(self, request):
        return Response({"key": request.auth.name, "role": request.auth.role})


# --- accounts ----------------------------------------------------------------------


def accounts_shown():
    return Account.objects.prefetch_related(
        Prefetch(
            "tax_codes",
            queryset=AccountTaxCode.objects.select_related("tax_rate").order_by("position"),
        ),
        Prefetch(
            "subscriptions",
            queryset=Subscription.objects.order_by("id").prefetch_related(
                Prefetch(
                    "charges",
                    queryset=Charge.objects.select_related("pricing").order_by("id"),
                ),
                "charges__pricing__tiers",
            ),
        ),
    )


class AccountListView(ApiView):
    permissions = {"GET": "customers.view_account", "POST": "customers.add_accountupload"}

    @extend_schema(
        parameters=[
            OpenApiParameter("batch", int),
            OpenApiParameter("bill_cycle_day", int),
            OpenApiParameter("status", str, enum=Status.values),
        ],
        responses={200: OBJECT, **ERRORS},
        summary="List accounts",
        operation_id="accounts_list",
    )
    def get(self, request):
        accounts = accounts_shown()
        batch = _whole(request, "batch", 1, 50)
        day = _whole(request, "bill_cycle_day", 1, 31)
        state = _choice(request, "status", Status.values)
        if batch is not None:
            accounts = accounts.filter(batch=batch)
        if day is not None:
            accounts = accounts.filter(bill_cycle_day=day)
        if state is not None:
            accounts = accounts.filter(status=state)
        return self.page(accounts, lambda rows: [s.account_dict(a) for a in rows])

    @extend_schema(
        request=OBJECT,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: OBJECT, **ERRORS},
        summary="Create an account (an account object of the import format)",
    )
    def post(self, request):
        return idempotent(request, self._create)

    def _create(self):
        data = request_data(self.request)
        if not isinstance(data, dict):
            raise Invalid("The body is one account object, as import_accounts reads it.")
        try:
            # The import's own validation and writing, for a file of one account.
            summary = accounts_import(document={"accounts": [data]})
        except ImportRefused as refused:
            fields = _problem_fields(refused.problems, r"^accounts\[0\]\.?")
            message = refused.problems[0].removeprefix("accounts[0].")
            exists = all("already exists" in p for p in refused.problems)
            raise (Refused if exists else Invalid)(message, fields=fields) from None
        account = accounts_shown().get(number=summary.account_numbers[0])
        return Response(s.account_dict(account), status=status.HTTP_201_CREATED)


class AccountDetailView(ApiView):
    permissions = {"GET": "customers.view_account", "PATCH": "customers.change_account"}

    @extend_schema(responses={200: OBJECT, **ERRORS}, summary="One account")
    def get(self, request, number):
        return Response(s.account_dict(get_object_or_404(accounts_shown(), number=number)))

    @extend_schema(
        request=s.AccountChangeSerializer,
        responses={200: OBJECT, **ERRORS},
        summary="Change an account's name, bill-to email, batch, payment term, tax codes or status",
    )
    def patch(self, request, number):
        account = get_object_or_404(Account, number=number)
        changes = dict(self.body(s.AccountChangeSerializer))
        try:
            account_change(account_id=account.pk, changes=changes, user=request.user)
        except AccountChangeRefused as refused:
            raise Invalid(str(refused), fields=refused.errors) from None
        return Response(s.account_dict(accounts_shown().get(pk=account.pk)))


# --- subscriptions and changes ----------------------------------------------------------


def subscriptions_shown():
    return Subscription.objects.select_related("account").prefetch_related(
        Prefetch("charges", queryset=Charge.objects.select_related("pricing").order_by("id")),
        "charges__pricing__tiers",
    )


def changes_of(subscription):
    return SubscriptionChange.objects.filter(subscription=subscription).select_related(
        "subscription", "charge", "made_by"
    )


class SubscriptionDetailView(ApiView):
    permissions = {"GET": "customers.view_account"}

    @extend_schema(responses={200: OBJECT, **ERRORS}, summary="A subscription and its changes")
    def get(self, request, number):
        subscription = get_object_or_404(subscriptions_shown(), number=number)
        found = s.subscription_dict(subscription)
        found["changes"] = [s.change_dict(c) for c in changes_of(subscription).order_by("id")]
        return Response(found)


class SubscriptionChangeView(ApiView):
    # The permission of the change forms (billruns/change_views.py).
    permissions = {"POST": "customers.change_account"}

    @extend_schema(
        request=OBJECT,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: OBJECT, **ERRORS},
        summary="One change of the subscription or one of its charges, as in amend",
    )
    def post(self, request, number):
        subscription = get_object_or_404(Subscription, number=number)
        return idempotent(request, lambda: self._change(subscription))

    def _change(self, subscription):
        data = request_data(self.request)
        if not isinstance(data, dict):
            raise Invalid("The body is one change object, as in an amend file.")
        change = dict(data)
        if change.get("type") in ("add_charge", "cancel_subscription"):
            given = change.setdefault("subscription", subscription.number)
            if given != subscription.number:
                raise Invalid(
                    f"This is a change of {subscription.number}, not of {given!r}.",
                    fields={"subscription": [f"Leave it out, or give {subscription.number}."]},
                )
        elif isinstance(change.get("charge"), str):
            charge = Charge.objects.filter(number=change["charge"]).first()
            if charge is not None and charge.subscription_id != subscription.pk:
                raise Invalid(
                    f"Charge {charge.number} is not a charge of {subscription.number}.",
                    fields={"charge": [f"A charge of {subscription.number}."]},
                )
        problems = Problems()
        requests = change_requests({"changes": [change]}, problems)
        if problems.count:
            fields = _problem_fields(problems.first, r"^changes\[0\]\.?")
            raise Invalid(problems.first[0].removeprefix("changes[0]."), fields=fields)
        try:
            (written,) = changes_apply(requests=requests, user=self.request.user)
        except ChangesRefused as refused:
            fields = _problem_fields(refused.problems, r"^changes\[0\]\.?")
            raise Refused(refused.problems[0].removeprefix("changes[0]."), fields=fields) from None
        written = changes_of(subscription).get(pk=written.pk)
        return Response(s.change_dict(written), status=status.HTTP_201_CREATED)


# --- usage -------------------------------------------------------------------------------


class UsageView(ApiView):
    # The permission of the usage page's upload (invoices/views.py).
    permissions = {"POST": "invoices.add_usageupload"}

    @extend_schema(
        request=s.UsageSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: OBJECT, **ERRORS},
        summary=f"Record usage (at most {s.MAX_USAGE_RECORDS} records, all or nothing)",
    )
    def post(self, request):
        return idempotent(request, self._import)

    def _import(self):
        records = self.body(s.UsageSerializer)["records"]
        fields = {}
        for index, record in enumerate(records):
            if not QUANTITY_PATTERN.fullmatch(record["quantity"]):
                fields[f"records[{index}].quantity"] = [
                    "A decimal string 0 or more, such as 12 or 0.5."
                ]
        if fields:
            raise Invalid(f"{next(iter(fields))}: {next(iter(fields.values()))[0]}", fields=fields)
        # The records as the import_usage file they are: the same import.
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["id", "charge", "date", "quantity"])
        for record in records:
            writer.writerow(
                [record["id"], record["charge"], record["date"].isoformat(), record["quantity"]]
            )
        try:
            summary = usage_import(stream=io.BytesIO(text.getvalue().encode("utf-8")))
        except UsageImportRefused as refused:

            def record_path(match):
                return f"records[{int(match.group(1)) - 2}]"

            problems = [re.sub(r"^line (\d+)", record_path, p) for p in refused.problems]
            problems = [re.sub(r"^(records\[\d+\]), ", r"\1.", p) for p in problems]
            raise Refused(problems[0], fields=_problem_fields(problems, r"^$")) from None
        return Response(
            {"imported": summary.imported, "already_recorded": summary.already_recorded},
            status=status.HTTP_201_CREATED,
        )


# --- bill runs -------------------------------------------------------------------------


def _run(number):
    return get_object_or_404(
        BillRun.objects.select_related("created_by", "schedule", "retry_of"), number=number
    )


def _summary(run):
    """The run as ``billrun show --json`` prints it (the one function both use)."""
    return selectors.run_summary(_run(run.number))


def _refused(exc):
    if isinstance(exc, services.InvalidRunParameters):
        fields = {
            ("bill_cycle_day" if key == "bill_cycle_days" else key): value
            for key, value in exc.errors.items()
        }
        return Invalid(str(exc), fields=fields)
    return Refused(str(exc))


class BillRunListView(ApiView):
    permissions = {"GET": "billruns.view_billrun", "POST": "billruns.add_billrun"}
    descending = True

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=RunStatus.values)],
        responses={200: OBJECT, **ERRORS},
        summary="List bill runs, newest first",
        operation_id="bill_runs_list",
    )
    def get(self, request):
        runs = BillRun.objects.select_related("created_by", "schedule", "retry_of")
        state = _choice(request, "status", RunStatus.values)
        if state is not None:
            runs = runs.filter(status=state)
        return self.page(runs, lambda rows: [selectors.run_summary(run) for run in rows])

    @extend_schema(
        request=s.BillRunCreateSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={202: OBJECT, **ERRORS},
        summary="Create a bill run (handed to the task queue)",
    )
    def post(self, request):
        return idempotent(request, self._create)

    def _create(self):
        body = self.body(s.BillRunCreateSerializer)
        day = body.get("bill_cycle_day", "all")
        try:
            run = services.bill_run_create(
                target_date=body.get("target_date") or timezone.localdate(),
                invoice_date=body.get("invoice_date"),
                batches=body.get("batches", []),
                bill_cycle_days=[] if day == "all" else [day],
                account=body.get("account"),
                subscriptions=body.get("subscriptions", []),
                auto_post=body["auto_post"],
                auto_email=body["auto_email"],
                no_email_for_zero_amount=body["no_email_for_zero_amount"],
                exclude_charge_types=body.get("exclude_charge_types", []),
                preview=body["preview"],
                created_by=self.request.user,
            )
        except services.BillRunActionRefused as exc:
            raise _refused(exc) from None
        return Response(_summary(run), status=status.HTTP_202_ACCEPTED)


class BillRunDetailView(ApiView):
    permissions = {"GET": "billruns.view_billrun", "DELETE": "billruns.delete_billrun"}

    @extend_schema(responses={200: OBJECT, **ERRORS}, summary="A run, as billrun show --json")
    def get(self, request, number):
        return Response(selectors.run_summary(_run(number)))

    @extend_schema(
        responses={204: None, **ERRORS},
        summary="Delete a Canceled or Error run (a preview: in any status but Processing)",
    )
    def delete(self, request, number):
        run = _run(number)
        try:
            services.bill_run_delete(run=run, user=request.user)
        except services.BillRunActionRefused as exc:
            raise _refused(exc) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class BillRunActionView(ApiView):
    """POST .../post/, cancel/, retry/, email/: the action handed to the task
    queue, 202 with the run (the new run for a retry)."""

    action = ""

    def required_permission(self, request):
        return RUN_PERMISSIONS[self.action] if request.method == "POST" else None

    @extend_schema(
        request=s.EmptySerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={202: OBJECT, **ERRORS},
    )
    def post(self, request, number):
        run = _run(number)
        return idempotent(request, lambda: self._act(run))

    def _act(self, run):
        user = self.request.user
        serializer = s.EmailSerializer if self.action == "email" else s.EmptySerializer
        body = self.body(serializer)
        try:
            if self.action == "post":
                result = services.bill_run_post(run=run, user=user)
            elif self.action == "cancel":
                return self._cancel(run)
            elif self.action == "retry":
                result = services.bill_run_retry(run=run, user=user)
            else:
                services.bill_run_email(run=run, user=user, resend=body["resend"], wait=False)
                result = run
        except services.BillRunActionRefused as exc:
            raise _refused(exc) from None
        return Response(_summary(result), status=status.HTTP_202_ACCEPTED)

    def _cancel(self, run):
        """202 with the run. A preview's cancel deletes it (INTERFACES.md,
        Previews): its answer is the run as it was read under the run's lock
        just before the deletion, in the same transaction, with the status
        Canceled that the service reports (a GET of it is then 404)."""
        user = self.request.user
        if not run.preview:  # (a run is a preview or not for good)
            return Response(
                _summary(services.bill_run_cancel(run=run, user=user, wait=False)),
                status=status.HTTP_202_ACCEPTED,
            )
        with transaction.atomic():
            try:
                shown = _summary(locks.lock_one(BillRun, run.pk))
            except BillRun.DoesNotExist:
                raise NotFound(f"No bill run {run.number}.") from None
            canceled = services.bill_run_cancel(run=run, user=user, wait=False)
        shown["status"] = canceled.status
        return Response(shown, status=status.HTTP_202_ACCEPTED)


def _action_view(action, summary, *, request=s.EmptySerializer, responses=None):
    """The view of one action, with its own ``post`` (each action's schema
    is its own: decorating the inherited method would change every one)."""

    def post(self, request, number):
        return BillRunActionView.post(self, request, number)

    schema = extend_schema(
        summary=summary,
        request=request,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=responses or {202: OBJECT, **ERRORS},
    )
    return type(
        f"BillRun{action.title()}View",
        (BillRunActionView,),
        {"action": action, "__doc__": summary, "post": schema(post)},
    )


BillRunPostView = _action_view("post", "Post a Completed run")
BillRunCancelView = _action_view(
    "cancel", "Cancel a Pending or Completed run (a preview is deleted: 202 with it as it was)"
)
BillRunRetryView = _action_view("retry", "A new run for the failed accounts of a run")
BillRunEmailView = _action_view(
    "email", "Email a Posted run's documents", request=s.EmailSerializer
)


class BillRunDocumentsView(ApiView):
    permissions = {"GET": "billruns.view_billrun"}
    renderer_classes = [RawJSONRenderer]

    @extend_schema(responses={200: OBJECT, **ERRORS}, summary="A run's documents, as --documents")
    def get(self, request, number):
        paginator = KeysetPagination()
        if connection.vendor == "postgresql":
            # One statement a page, written by PostgreSQL as the JSON text
            # of the page's documents, sent as it is (api.renderers): the
            # run found by its number, whether it exists, the page's ids (a
            # range of the index document_run_id), their documents.
            page = paginator.paginate_json(
                request,
                self,
                lambda after, limit: selectors.run_documents_page_json(
                    number, after=after, limit=limit
                ),
            )
            if not page.run_exists:
                raise NotFound("Not found.")
            return paginator.get_paginated_json_response(page.text)
        # Elsewhere: the page's ids, a range of the index document_run_id
        # (the run's id from its number in a subquery, not read first), and
        # the documents of those ids; only an empty page asks whether the
        # run exists (404). all_objects: a preview's documents are its own
        # (Preview, no number).
        run_id = Subquery(BillRun.objects.filter(number=number).order_by().values("id"))
        rows = paginator.paginate_queryset(
            Document.all_objects.filter(bill_run_id=run_id), request, view=self, rows_of=_page_shown
        )
        if not rows and not BillRun.objects.filter(number=number).exists():
            raise NotFound("Not found.")
        return paginator.get_paginated_response(rows)


class BillRunFailuresView(ApiView):
    permissions = {"GET": "billruns.view_billrun"}

    @extend_schema(responses={200: OBJECT, **ERRORS}, summary="A run's failures")
    def get(self, request, number):
        run = _run(number)
        failures = BillRunFailure.objects.filter(bill_run=run).select_related(
            "account", "subscription"
        )
        return self.page(failures, lambda rows: [s.failure_dict(f) for f in rows])


# --- documents ----------------------------------------------------------------------


class DocumentListView(ApiView):
    permissions = {"GET": "invoices.view_document"}

    @extend_schema(
        parameters=[
            OpenApiParameter("account", str),
            OpenApiParameter("bill_run", str),
            OpenApiParameter("status", str, enum=DocumentStatus.values),
            OpenApiParameter("type", str, enum=DocumentType.values),
            OpenApiParameter("invoice_date_from", OpenApiTypes.DATE),
            OpenApiParameter("invoice_date_to", OpenApiTypes.DATE),
        ],
        responses={200: OBJECT, **ERRORS},
        summary="List documents",
        operation_id="documents_list",
    )
    def get(self, request):
        documents = Document.objects.only("id")
        params = request.query_params
        if "account" in params:
            documents = documents.filter(account__number=params["account"])
        if "bill_run" in params:
            documents = documents.filter(bill_run__number=params["bill_run"])
        state = _choice(request, "status", DocumentStatus.values)
        kind = _choice(request, "type", DocumentType.values)
        first = _date_param(request, "invoice_date_from")
        last = _date_param(request, "invoice_date_to")
        if state is not None:
            documents = documents.filter(status=state)
        if kind is not None:
            documents = documents.filter(document_type=kind)
        if first is not None:
            documents = documents.filter(invoice_date__gte=first)
        if last is not None:
            documents = documents.filter(invoice_date__lte=last)
        paginator = KeysetPagination()
        rows = paginator.paginate_queryset(documents, request, view=self, rows_of=_page_shown)
        return paginator.get_paginated_response(rows)


def _page_shown(ids):
    """The documents of a page's ids (a subquery) as ``billrun show --json
    --documents`` lists them, with their ids (the ids are already the ones
    shown: a preview's own, on its run's list; never one on the documents'
    list)."""
    return selectors.documents_page_as_dicts(ids)


def _documents_shown(rows):
    """A page of documents as ``billrun show --json --documents`` lists them
    (the one function the run, the webhooks and these lists use)."""
    # all_objects: the rows are already the ones shown (a preview's own, on
    # its run's list; never one on the documents' list).
    ids = [row.pk for row in rows]
    return selectors.documents_as_dicts(Document.all_objects.filter(pk__in=ids))


def _document(number, *related):
    return get_object_or_404(Document.objects.select_related("account", *related), number=number)


class DocumentDetailView(ApiView):
    permissions = {"GET": "invoices.view_document"}

    @extend_schema(responses={200: OBJECT, **ERRORS}, summary="One document")
    def get(self, request, number):
        return Response(_documents_shown([_document(number)])[0])


class PdfRenderer(BaseRenderer):
    media_type = "application/pdf"
    format = "pdf"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data) if isinstance(data, dict) else data


class DocumentPdfView(ApiView):
    permissions = {"GET": "invoices.view_document"}
    renderer_classes = [JSONRenderer, PdfRenderer]

    @extend_schema(
        responses={(200, "application/pdf"): OpenApiTypes.BINARY, **ERRORS},
        summary="A document's PDF",
    )
    def get(self, request, number):
        document = _document(number, "bill_run", "posted_by")
        try:
            pdf = document_pdf(document=document)
        except PdfUnavailable as unavailable:
            return Response(
                {"error": {"code": "unavailable", "message": str(unavailable), "fields": {}}},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{document_pdf_filename(document)}"'
        return response


class PaymentView(ApiView):
    permissions = {"POST": "invoices.add_payment"}

    @extend_schema(
        request=s.PaymentSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: OBJECT, **ERRORS},
        summary="Record a payment on a Posted invoice",
    )
    def post(self, request, number):
        document = _document(number)
        return idempotent(request, lambda: self._pay(document))

    def _pay(self, document):
        body = self.body(s.PaymentSerializer)
        try:
            payment = payment_record(
                document_id=document.pk,
                amount=body["amount"],
                payment_date=body["date"],
                method=body["method"],
                reference=body["reference"],
                user=self.request.user,
            )
        except DocumentActionRefused as refused:
            raise Refused(str(refused)) from None
        payment = Payment.objects.select_related("created_by").get(pk=payment.pk)
        document.refresh_from_db(fields=["balance"])
        return Response(s.payment_dict(payment, document), status=status.HTTP_201_CREATED)


# --- anything else under /api/v1/ -----------------------------------------------------------


class NotFoundView(ApiView):
    """Any other path under /api/v1/: 404 in the API's shape (after the key
    is checked, as for every path)."""

    permissions = {}

    def required_permission(self, request):
        return None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        raise NotFound(f"No API endpoint is at {request.path[:200]}.")


# --- webhook endpoints (the webhooks app's models and services) ---------------------------


def endpoint_dict(endpoint):
    return {
        "id": endpoint.pk,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "created_at": endpoint.created_at.isoformat(),
        "disabled_at": endpoint.disabled_at.isoformat() if endpoint.disabled_at else None,
        "owner": endpoint.owner.get_username() if endpoint.owner_id else None,
    }


def attempt_dict(attempt):
    return {
        "id": attempt.pk,
        "event_id": attempt.event_id,
        "event_type": attempt.event_type,
        "attempted_at": attempt.attempted_at.isoformat(),
        "status_code": attempt.status_code,
        "duration_ms": attempt.duration_ms,
        "error": attempt.error,
    }


def _endpoint(endpoint_id):
    if not endpoint_id.isascii() or not endpoint_id.isdigit() or len(endpoint_id) > 18:
        raise NotFound(f"No webhook endpoint has the id {endpoint_id[:40]!r}.")
    return get_object_or_404(Endpoint.objects.select_related("owner"), pk=int(endpoint_id))


class WebhookListView(ApiView):
    permissions = {"GET": "webhooks.view_endpoint", "POST": "webhooks.add_endpoint"}

    @extend_schema(responses={200: OBJECT, **ERRORS}, summary="Webhook endpoints")
    def get(self, request):
        return self.page(
            Endpoint.objects.select_related("owner"),
            lambda rows: [endpoint_dict(e) for e in rows],
        )

    @extend_schema(
        request=s.WebhookEndpointSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: OBJECT, **ERRORS},
        summary="Create a webhook endpoint (its signing secret is answered once)",
    )
    def post(self, request):
        return idempotent(request, self._create)

    def _create(self):
        body = self.body(s.WebhookEndpointSerializer)
        try:
            endpoint, secret = webhook_services.endpoint_create(
                body["url"], body["events"], self.request.user
            )
        except DjangoValidationError as invalid:
            fields = getattr(invalid, "message_dict", {"__all__": invalid.messages})
            raise Invalid(invalid.messages[0], fields=fields) from None
        found = endpoint_dict(Endpoint.objects.select_related("owner").get(pk=endpoint.pk))
        return Response({**found, "secret": secret}, status=status.HTTP_201_CREATED)


class WebhookDetailView(ApiView):
    permissions = {"DELETE": "webhooks.delete_endpoint"}

    @extend_schema(responses={204: None, **ERRORS}, summary="Delete a webhook endpoint")
    def delete(self, request, endpoint_id):
        webhook_services.endpoint_delete(_endpoint(endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveriesView(ApiView):
    permissions = {"GET": "webhooks.view_deliveryattempt"}
    descending = True

    @extend_schema(
        responses={200: OBJECT, **ERRORS}, summary="An endpoint's delivery attempts, newest first"
    )
    def get(self, request, endpoint_id):
        endpoint = _endpoint(endpoint_id)
        return self.page(
            DeliveryAttempt.objects.filter(endpoint=endpoint),
            lambda rows: [attempt_dict(a) for a in rows],
        )

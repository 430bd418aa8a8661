"""Row locks (``SELECT ... FOR UPDATE``), and the one order they are taken in.

A transaction that locks rows of more than one kind takes them in the order
of ``LOCK_ORDER``, and rows of one kind in id order, so that two
transactions wanting some of the same rows queue one behind the other
instead of deadlocking:

1. a schedule: firing it creates its run;
2. a bill run: every action on a run (post, cancel, retry, fail, finish,
   delete), and posting one of the run's documents (the run first: a cancel
   of the run and the posting of one of its documents exclude each other);
3. a bill run's chunk, for the worker that bills it (it does not lock the
   run, but see the exception below);
4. an uploaded import file, for the worker that imports it (held to the
   import's commit, before what the import locks: core/uploads.py);
5. accounts, in id order: a chunk's generation, a cancel's re-check, a usage
   import; their charges are written (so locked) only after the accounts;
6. documents, in id order: posting, payments, credit applications, emailing;
7. rows locked alone, by a transaction that locks nothing else: a run
   email's delivery, the tenant settings, a tax rate (its change), a webhook event (its delivery's
   claim and outcome; the outcome then updates the event's endpoint row:
   deleting an endpoint deletes its events first, the same order), a
   disabled webhook endpoint's email.

One exception, safe by construction: a chunk's last statement adds its
accounts to its run's counter, which locks the run's row after the chunk's
accounts and documents, the moment before the chunk commits. No transaction
holding a Processing run's row waits for an account or a document of a chunk
still working (fail and finish lock the run and touch only what committed
chunks wrote), so that wait always ends.

A lock taken with these helpers covers only the queried table's rows
(``of=("self",)``): on PostgreSQL a bare ``select_for_update()`` with
``select_related`` locks every joined row too (a document being emailed
would lock its account for as long as the mail server takes). Django drops
``of`` for ``values()``/``values_list()`` queries: such a query locks every
table it joins, so lock those by id, without joins. The heartbeat and the
sweeper never wait: ``skip_locked`` (a row another transaction holds is
proof that its worker lives).
"""

# Model labels, in the order their rows are locked (see above). A model
# locked through these helpers must have its place here.
LOCK_ORDER = (
    "billruns.Schedule",
    "billruns.BillRun",
    "billruns.BillRunChunk",
    # An upload of either kind is locked alone, before what its import locks.
    "invoices.UsageUpload",
    "customers.AccountUpload",
    "customers.Account",
    "invoices.Document",
    "notifications.EmailDelivery",
    # A webhook event (its delivery's claim and outcome; the outcome then
    # updates the event's endpoint) and an endpoint's disabled email.
    "webhooks.Event",
    "webhooks.DisabledEmail",
    "invoices.TenantSettings",
    "customers.TaxRate",
)


# Rows of these tables are locked FOR NO KEY UPDATE (PostgreSQL), not FOR
# UPDATE. The two conflict alike with each other and with every other lock of
# the row (a chunk, a cancel's re-check, a usage import, an UPDATE), but NO
# KEY UPDATE lets through the KEY SHARE lock a foreign key's check takes
# when a row referring to the account is inserted: a preview run writing its
# documents and failures for an account (billruns/generation.py), which
# takes no account lock, then never makes a real run's chunk wait for it.
NO_KEY_UPDATE = frozenset({"customers.Account"})


def locked(queryset, *, skip_locked=False):
    """``queryset``, to be locked when it is evaluated: in id order, only the
    rows of its own table; with ``skip_locked``, rows another transaction
    holds are left out instead of waited for. Call it inside
    ``transaction.atomic()``."""
    label = queryset.model._meta.label
    if label not in LOCK_ORDER:
        raise ValueError(f"{label} has no place in core.locks.LOCK_ORDER; give it one.")
    return queryset.order_by("pk").select_for_update(
        of=("self",), skip_locked=skip_locked, no_key=label in NO_KEY_UPDATE
    )


def lock_one(model, pk):
    """The row of ``model`` whose id is ``pk``, locked; ``model.DoesNotExist``
    when there is none."""
    return locked(model.objects.filter(pk=pk)).get()

"""What invoices announce: documents posted and payments recorded. Other
apps listen (webhooks); this app imports none of them.

As with ``billruns.signals``, every signal is sent synchronously INSIDE the
transaction of the change, after the change is written: what a listener
writes commits or rolls back with it, slow work is queued with
``transaction.on_commit``, and an exception a listener lets out rolls the
change back.

Cost: a run's posting announces once per posting batch (POST_BATCH_SIZE
documents), never once per document, and hands the batch's ids as a lazy
query: a listener with nobody to tell (no webhook endpoint wants
``document.posted``) never reads them, so posting 100,000 documents with no
endpoint costs one small query per batch.
"""

from django.dispatch import Signal

# A batch of a run's posting: its Draft documents just became Posted (one
# UPDATE, one transaction). Sent with sender=Document and arguments:
# bill_run_id; document_ids, a lazy QuerySet of the ids this batch posted
# (evaluated only by a listener that iterates it, in the batch's
# transaction); user (who posted, None for nobody).
documents_posted = Signal()

# One document posted on its own (invoices.services.document_post): the
# admin, the invoice page. sender=Document; arguments: document (as saved,
# Posted), user.
document_posted = Signal()

# A payment recorded on a Posted invoice (invoices.services.payment_record),
# after the invoice's balance is lowered. sender=Payment; arguments:
# payment, document (the invoice with its balance after the payment), user.
payment_recorded = Signal()

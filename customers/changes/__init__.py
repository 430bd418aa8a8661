"""Subscription changes (BILLING_RULES.md, "Subscription changes and
adjustments"): effective-dated changes a clerk makes to a subscription, each
recorded as a SubscriptionChange with who, when, before and after.

- ``parsing.py``: an ``amend`` file (INTERFACES.md) as a list of requests,
  every malformed field reported with its JSON path;
- ``rules.py``: what each change is allowed on, as the rules' table says,
  with the message that names the charge or subscription and the rule;
- ``services.py``: ``changes_apply`` (validate and apply a list, in order,
  all or nothing, under the accounts' locks) and ``changes_apply_file``.

The engine reads what the changes leave (a charge's end date, its price
segments ``ChargePrice``, a subscription's cancel date) and makes the
adjustments; nothing here touches a document.
"""

from customers.changes.parsing import ChangeRequest, change_requests
from customers.changes.services import ChangesRefused, changes_apply, changes_apply_file

__all__ = [
    "ChangeRequest",
    "ChangesRefused",
    "change_requests",
    "changes_apply",
    "changes_apply_file",
]

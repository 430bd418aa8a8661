"""What the engine announces; notifications listen (the engine never imports them).

Both are sent after the transaction that made the change has committed.
"""

from django.dispatch import Signal

# A run ended Completed (with or without failures, after its auto-post if it
# had one) or Error. Arguments: run.
bill_run_finished = Signal()

# A run's documents were posted. Arguments: run.
bill_run_posted = Signal()

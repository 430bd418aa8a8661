"""Listeners of the engine's signals: thin, each calls a service."""

import logging

from notifications import services

logger = logging.getLogger(__name__)


def on_bill_run_finished(sender, run, **kwargs):
    # The run has committed before the signal is sent; a problem here must
    # not turn into an error of the engine's caller (a finished run is
    # finished whatever happens to its email), so it is logged instead.
    try:
        services.run_finished_notify(run_id=run.pk)
    except Exception:
        logger.exception("notifying the end of bill run %s failed", run.number)

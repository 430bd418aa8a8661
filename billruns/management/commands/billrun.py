"""``manage.py billrun``: operate bill runs from the shell (INTERFACES.md).

A refused action prints one line to stderr and exits 1; a malformed command
line exits 2 (argparse), and so does an empty or malformed option value: it
is never taken for the option's default. Output piped into a reader that
stops early (``| head -1``) ends quietly (core.cli).
"""

import argparse
import json
import logging

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billruns import selectors, services
from billruns.models import BillRun, RunStatus
from core.cli import QuietWhenStdoutClosed, date_argument, non_empty, whole_number
from core.dates import DATE_RANGE

PERMISSIONS = {
    "create": "billruns.add_billrun",
    "post": "billruns.post_billrun",
    "cancel": "billruns.cancel_billrun",
    "retry": "billruns.retry_billrun",
    "delete": "billruns.delete_billrun",
    "email": "billruns.email_billrun",
}


class StoreOnce(argparse.Action):
    """An option that may be given once, where a second value would look like
    a second selection (as --batch repeats): it is a malformed line."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} may be given once.")
        setattr(namespace, self.dest, values)


day_of_month = whole_number(1, 31, "a day")
batch_number = whole_number(1, 50, "a batch")


def bill_cycle_day(text):
    """A day from 1 to 31, or ``all``. Zero is not "all days": only ``all`` is."""
    if text.strip() == "all":
        return "all"
    try:
        return day_of_month(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be a day from 1 to 31 or all, not {text!r}"
        ) from None


def charge_type(text):
    """A charge type a run may exclude: one_time, recurring or usage."""
    if text.strip() in services.CHARGE_TYPE_VALUES:
        return text.strip()
    raise argparse.ArgumentTypeError(
        f"must be one of {', '.join(services.CHARGE_TYPE_VALUES)}, not {text!r}"
    )


class Command(QuietWhenStdoutClosed, BaseCommand):
    help = "Create, post, cancel, retry, email, show and list bill runs."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))

        # Every value is checked as it is parsed: an empty or malformed one
        # exits 2 and is never taken for the default (core.cli).
        user_help = "who acts (default: the first superuser); not empty"
        create = sub.add_parser("create", help="Create an ad hoc bill run.")
        create.add_argument(
            "--target-date",
            type=date_argument,
            help=f"YYYY-MM-DD {DATE_RANGE} (default: today in the site's time zone)",
        )
        create.add_argument(
            "--invoice-date",
            type=date_argument,
            help=f"YYYY-MM-DD {DATE_RANGE}, before or after the target date "
            "(default: the target date)",
        )
        create.add_argument(
            "--batch", type=batch_number, action="append", default=[], dest="batches", help="1-50"
        )
        create.add_argument(
            "--bill-cycle-day", type=bill_cycle_day, action=StoreOnce, help="1-31 or all (default)"
        )
        create.add_argument("--account", type=non_empty, action=StoreOnce)
        create.add_argument(
            "--subscription", type=non_empty, action="append", default=[], dest="subscriptions"
        )
        create.add_argument("--auto-post", action="store_true")
        create.add_argument("--auto-email", action="store_true")
        create.add_argument("--no-email-for-zero-amount", action="store_true")
        create.add_argument(
            "--exclude-charge-type",
            type=charge_type,
            action="append",
            default=[],
            dest="exclude_charge_types",
            metavar="TYPE",
            help=f"{', '.join(services.CHARGE_TYPE_VALUES)}: not billed by this run, "
            "they stay due (repeat for several)",
        )
        create.add_argument(
            "--preview",
            action="store_true",
            help="compute what the run would make now, consuming nothing "
            "(no numbers, no charged-through dates); never posted or emailed",
        )
        create.add_argument("--user", type=non_empty, help=user_help)
        create.add_argument("--wait", action="store_true")

        for name, text in (
            ("post", "Post a Completed run."),
            ("cancel", "Cancel a Pending or Completed run."),
            ("delete", "Delete a Canceled or Error run (a preview: in any status but Processing)."),
        ):
            action = sub.add_parser(name, help=text)
            action.add_argument("number", type=non_empty)
            action.add_argument("--user", type=non_empty, help=user_help)

        retry = sub.add_parser("retry", help="A new run for the failed accounts of a run.")
        retry.add_argument("number", type=non_empty)
        retry.add_argument("--user", type=non_empty, help=user_help)
        retry.add_argument("--wait", action="store_true")

        email = sub.add_parser(
            "email", help="Email a Posted run's documents to their bill-to contacts."
        )
        email.add_argument("number", type=non_empty)
        email.add_argument("--resend", action="store_true", help="Also documents already emailed.")
        email.add_argument("--user", type=non_empty, help=user_help)

        show = sub.add_parser("show", help="A run's summary.")
        show.add_argument("number", type=non_empty)
        show.add_argument("--json", action="store_true")
        show.add_argument("--documents", action="store_true")

        listing = sub.add_parser("list", help="Runs, newest first.")
        listing.add_argument("--status", choices=RunStatus.values)

    def handle(self, *args, action, **options):
        # What goes to stderr is the one line of a refusal: the log records
        # of the work done in this process (the task queue's, a run's, a
        # PDF's) are shown from verbosity 2 (-v 2) up.
        quiet = options["verbosity"] < 2
        if quiet:
            logging.disable(logging.CRITICAL)
        try:
            return getattr(self, f"handle_{action}")(**options)
        finally:
            if quiet:
                logging.disable(logging.NOTSET)

    # --- helpers ---

    def _user(self, username, action):
        users = get_user_model().objects
        # Only an absent --user means the first superuser (an empty one is
        # refused when the command line is parsed).
        if username is not None:
            user = users.filter(username=username).first()
            if user is None:
                raise CommandError(f"No user is named {username!r}.")
        else:
            user = users.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if user is not None and not user.has_perm(PERMISSIONS[action]):
            raise CommandError(f"User {user.get_username()} may not {action} bill runs.")
        return user

    def _run(self, number):
        run = BillRun.objects.filter(number=number).first()
        if run is None:
            raise CommandError(f"No bill run has the number {number!r}.")
        return run

    def _wait_outcome(self, run):
        run.refresh_from_db()
        self.stdout.write(f"{run.number} {run.status}" + (" with errors" if run.has_errors else ""))
        if run.status == RunStatus.ERROR:
            raise CommandError(f"{run.number} ended in Error: {run.error_message}")
        if run.last_post_error:
            self.stderr.write(f"Posting {run.number} failed: {run.last_post_error}")

    # --- actions ---

    def handle_create(self, **options):
        # Options that cannot go together make a malformed command line: exit 2.
        account = options["account"]
        if account is not None and (options["batches"] or options["bill_cycle_day"] is not None):
            raise CommandError(
                "--account cannot be combined with --batch or --bill-cycle-day.", returncode=2
            )
        if options["subscriptions"] and account is None:
            raise CommandError("--subscription needs --account.", returncode=2)
        if options["preview"]:
            for option in ("auto_post", "auto_email", "no_email_for_zero_amount"):
                if options[option]:
                    flag = "--" + option.replace("_", "-")
                    raise CommandError(
                        f"--preview cannot be combined with {flag}: a preview is never "
                        "posted or emailed.",
                        returncode=2,
                    )
        user = self._user(options["user"], "create")
        day = "all" if options["bill_cycle_day"] is None else options["bill_cycle_day"]
        target_date = options["target_date"]
        try:
            run = services.bill_run_create(
                target_date=timezone.localdate() if target_date is None else target_date,
                invoice_date=options["invoice_date"],
                batches=options["batches"],
                bill_cycle_days=[] if day == "all" else [day],
                account=account,
                subscriptions=options["subscriptions"],
                auto_post=options["auto_post"],
                auto_email=options["auto_email"],
                no_email_for_zero_amount=options["no_email_for_zero_amount"],
                exclude_charge_types=options["exclude_charge_types"],
                created_by=user,
                preview=options["preview"],
                enqueue=not options["wait"],
            )
        except services.BillRunActionRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(run.number)
        if options["wait"]:
            self.stdout.flush()
            run = services.bill_run_execute(run_id=run.pk)
            self._wait_outcome(run)

    def _act(self, number, username, action, call):
        """Load the run and the acting user, call one service; a refusal
        becomes one line on stderr and exit 1."""
        run = self._run(number)
        actor = self._user(username, action)
        try:
            return call(run, actor)
        except services.BillRunActionRefused as exc:
            raise CommandError(str(exc)) from exc

    def handle_post(self, number, user, **options):
        run = self._act(
            number,
            user,
            "post",
            lambda run, actor: services.bill_run_post(run=run, user=actor, wait=True),
        )
        self.stdout.write(f"{run.number} {run.status}")

    def handle_cancel(self, number, user, **options):
        run = self._act(
            number,
            user,
            "cancel",
            lambda run, actor: services.bill_run_cancel(run=run, user=actor, wait=True),
        )
        if run.preview:
            self.stdout.write(f"{run.number} deleted (a canceled preview is deleted)")
            return
        self.stdout.write(f"{run.number} {run.status}")

    def handle_delete(self, number, user, **options):
        self._act(
            number, user, "delete", lambda run, actor: services.bill_run_delete(run=run, user=actor)
        )
        self.stdout.write(f"{number} deleted")

    def handle_retry(self, number, user, wait, **options):
        new_run = self._act(
            number,
            user,
            "retry",
            lambda run, actor: services.bill_run_retry(run=run, user=actor, wait=wait),
        )
        self.stdout.write(new_run.number)
        if wait:
            self._wait_outcome(new_run)

    def handle_email(self, number, user, resend, **options):
        outcome = self._act(
            number,
            user,
            "email",
            lambda run, actor: services.bill_run_email(run=run, user=actor, resend=resend),
        )
        self.stdout.write(str(outcome))

    def handle_show(self, number, documents, **options):
        run = self._run(number)
        summary = selectors.run_summary(run, documents=documents)
        if options["json"]:
            self.stdout.write(json.dumps(summary))
            return
        lines = [
            f"{summary['number']}  {summary['status']}"
            + ("  (preview)" if summary["preview"] else "")
            + ("  (with errors)" if summary["has_errors"] else ""),
            f"  target date {summary['target_date']}, invoice date {summary['invoice_date']}",
            f"  selection: {run.selection_label}",
            "  excluded charge types: " + (", ".join(summary["exclude_charge_types"]) or "none"),
            f"  accounts processed {summary['accounts_processed']} of "
            f"{summary['accounts_selected']}, failed {summary['accounts_failed']}",
            f"  invoices {summary['invoices']}, credit memos {summary['credit_memos']}",
            "  totals: " + (", ".join(f"{c} {t}" for c, t in summary["totals"].items()) or "none"),
        ]
        lines += [
            f"  failed: {f['account']}"
            + (f" / {f['subscription']}" if f["subscription"] else "")
            + f": {f['reason']}"
            for f in summary["failures"]
        ]
        for document in summary.get("documents", []):
            lines.append(
                f"  {document['number'] or '(no number)'} {document['account']} "
                f"{document['status']} "
                f"{document['currency']} {document['amount']}"
            )
        self.stdout.write("\n".join(lines))

    def handle_list(self, status, **options):
        runs = BillRun.objects.all().order_by("-id")
        if status:
            runs = runs.filter(status=status)
        for run in runs.iterator():
            if self.stdout_reader_gone:
                break
            totals = ", ".join(f"{c} {t}" for c, t in run.totals.items())
            self.stdout.write(
                f"{run.number}  {run.status:<16} target {run.target_date}  "
                f"accounts {run.accounts_processed}/{run.accounts_selected} "
                f"failed {run.accounts_failed}  invoices {run.invoices_count} "
                f"credit memos {run.credit_memos_count}  {totals}".rstrip()
                + ("  (preview)" if run.preview else "")
            )

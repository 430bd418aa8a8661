from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core.cli import QuietWhenStdoutClosed, checked, non_empty
from core.money import format_plain
from customers.models import TaxRate, tax_code_problem, tax_rate_parse
from customers.services import TaxRateRefused, tax_name_problem, tax_rate_set


def _code(text: str) -> str:
    problem = tax_code_problem(text)
    if problem:
        raise ValueError(problem)
    return text


def _name(text: str) -> str:
    problem = tax_name_problem(text)
    if problem:
        raise ValueError(problem)
    return text.strip()


def rate_line(rate: TaxRate) -> str:
    """One rate as the command prints it: code, rate (percent, a plain
    decimal), name."""
    return f"{rate.code}  {format_plain(rate.rate)}  {rate.name}"


class Command(QuietWhenStdoutClosed, BaseCommand):
    help = (
        "Create the tax rate CODE or change it (rate: percent, 0 to 100, at most 4 places); "
        "print it. With --list, print every rate. Every change is recorded, with who made it."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "code",
            metavar="CODE",
            nargs="?",
            type=checked(_code, "CODE"),
            help="1 to 20 characters of A-Z, 0-9, _ and -",
        )
        parser.add_argument(
            "rate",
            metavar="RATE",
            nargs="?",
            type=checked(tax_rate_parse, "RATE"),
            help="percent, 0 to 100, at most 4 decimal places (7.25)",
        )
        parser.add_argument(
            "--name",
            type=checked(_name, "NAME"),
            help="its name (a new rate without one is named by its code); not empty",
        )
        parser.add_argument("--list", action="store_true", help="print every tax rate")
        parser.add_argument(
            "--user",
            type=non_empty,
            help="who makes the change, recorded with it (default: the first superuser)",
        )

    def handle(self, *args, code=None, rate=None, name=None, list=False, user=None, **options):
        # What cannot go together is a malformed command line: exit 2.
        if list:
            if code is not None or name is not None or user is not None:
                raise CommandError("--list takes no CODE, RATE, --name or --user.", returncode=2)
            for tax_rate in TaxRate.objects.order_by("code"):
                self.stdout.write(rate_line(tax_rate))
            return
        if code is None or rate is None:
            raise CommandError("Give CODE and RATE, or --list.", returncode=2)
        actor = self._user(user)
        try:
            tax_rate = tax_rate_set(code, rate, name=name, user=actor)
        except TaxRateRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(rate_line(tax_rate))

    @staticmethod
    def _user(username):
        """The named user, or by default the first active superuser; with no
        superuser at all, the change records no one."""
        users = get_user_model().objects
        if username is None:
            return users.filter(is_superuser=True, is_active=True).order_by("pk").first()
        found = users.filter(username=username).first()
        if found is None:
            raise CommandError(f"No user is named {username!r}.")
        if not found.is_active:
            raise CommandError(f"User {username} is inactive.")
        return found

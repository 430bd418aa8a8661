from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from core.cli import FileImportCommand, non_empty
from customers.changes import changes_apply_file
from customers.importer import ImportRefused


class Command(FileImportCommand):
    help = (
        "Apply subscription changes from a JSON file in UTF-8 ('-' for standard input): "
        '{"changes": [...]}, applied in order, all or nothing. Any refused change or '
        "malformed field is printed with its JSON path and nothing is applied."
    )
    file_help = "the JSON file (UTF-8, a byte order mark allowed), or - for stdin"
    # ChangesRefused is an ImportRefused; the file's own problems (too large,
    # not JSON) are ImportRefused too.
    refused = ImportRefused

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--user",
            type=non_empty,
            help="who makes the changes, recorded on each (default: the first superuser); "
            "not empty",
        )

    def handle(self, *args, user=None, **options):
        self.user = self._user(user)
        return super().handle(*args, **options)

    def import_file(self, *, path, stdin):
        return changes_apply_file(path=path, stdin=stdin, user=self.user)

    @staticmethod
    def _user(username):
        """The named user, or by default the first active superuser; with no
        superuser at all, the changes record no one (as a run without
        ``--user`` has no creator)."""
        users = get_user_model().objects
        if username is None:
            return users.filter(is_superuser=True, is_active=True).order_by("pk").first()
        user = users.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user is named {username!r}.")
        if not user.is_active:
            raise CommandError(f"User {username} is inactive.")
        return user

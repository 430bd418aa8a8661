"""``manage.py api_key create NAME --role clerk|viewer`` (prints the key once)
and ``api_key revoke NAME``."""

from django.core.management.base import BaseCommand, CommandError

from api.keys import ApiKeyRefused, api_key_create, api_key_revoke
from api.models import Role


class Command(BaseCommand):
    help = "Create or revoke API keys."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
        create = sub.add_parser("create", help="Create a key; prints it once.")
        create.add_argument("name")
        create.add_argument("--role", required=True, choices=Role.values)
        revoke = sub.add_parser("revoke", help="Revoke a key.")
        revoke.add_argument("name")

    def handle(self, *args, action, name, **options):
        try:
            if action == "create":
                key, raw = api_key_create(name=name, role=options["role"])
                self.stdout.write(raw)
                self.stderr.write(
                    f"API key {key.name} ({key.role}, prefix {key.prefix}): shown only "
                    f"this once, stored as a hash. It acts as the user {key.user.username}."
                )
            else:
                key = api_key_revoke(name=name)
                self.stdout.write(f"{key.name} revoked")
        except ApiKeyRefused as refused:
            raise CommandError(str(refused)) from refused

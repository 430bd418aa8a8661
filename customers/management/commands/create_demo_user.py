"""Create the demo billing clerk for `make run`, once.

The password is generated, printed, and kept in .demo-password (git-ignored,
readable by its owner only) so that a later `make run` can point to it; the
user is staff so that it can also use the admin, within its group's rights.
"""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

CLERK_GROUP = "Billing clerk"


class Command(BaseCommand):
    help = "Create a demo user in the Billing clerk group, with a generated password."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="clerk")
        parser.add_argument(
            "--password-file",
            default=str(Path(settings.BASE_DIR) / ".demo-password"),
            help="Where the generated password is kept (default: .demo-password).",
        )

    def handle(self, *args, username, password_file, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(
                f"Demo user {username!r} exists; its password was printed when it was "
                f"created and is kept in {password_file}."
            )
            return
        try:
            group = Group.objects.get(name=CLERK_GROUP)
        except Group.DoesNotExist:
            raise CommandError(f"Group {CLERK_GROUP!r} is missing: run migrate first.") from None

        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = User.objects.create_user(
                username, email=f"{username}@example.com", password=password, is_staff=True
            )
            user.groups.add(group)
        descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(f"{username} {password}\n")

        self.stdout.write(
            self.style.SUCCESS(
                f"Created demo user {username!r} ({CLERK_GROUP}, staff) with password: {password}"
            )
        )
        self.stdout.write(
            f"Sign in at {settings.SITE_URL}/accounts/login/; the password is kept in "
            f"{password_file}."
        )

"""``manage.py create_api_key EMAIL``: issue an API key for a developer, for operators and scripts.

The key alone goes to stdout (``KEY=$(manage.py create_api_key dev@example.com)``); what it is
and that it will not be shown again goes to stderr. Only its hash is stored.
"""

from datetime import timedelta

from allauth.account.adapter import get_adapter
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from portal.services import ApiKeyError, account_ensure, api_key_create


class Command(BaseCommand):
    help = "Create an API key for the developer with this email and print it once."

    def add_arguments(self, parser):
        parser.add_argument("email", help="The developer's email address.")
        parser.add_argument("--name", default="Created by an operator", help="The key's name.")
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help="Expire the key after N days."
        )
        parser.add_argument(
            "--create-account",
            action="store_true",
            help="Create the developer (email verified, no password: they can set one with "
            "'forgot password') and their account if no user has this email.",
        )

    def handle(self, *args, email: str, name: str, expires_in_days, create_account, **options):
        email = email.strip()
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{email!r} is not an email address.") from None
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError("--expires-in-days must be at least 1.")
        expires_at = (
            None if expires_in_days is None else timezone.now() + timedelta(days=expires_in_days)
        )

        with transaction.atomic():
            user = self._user(email, create_account)
            account = account_ensure(owner=user)
            try:
                key, secret = api_key_create(account=account, name=name, expires_at=expires_at)
            except ApiKeyError as exc:
                raise CommandError(str(exc)) from None

        expiry = f", expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else ""
        self.stderr.write(
            f"Created key “{key.name}” ({key.prefix}) for {user.email}{expiry}. "
            "It is shown once, below; only its hash is stored."
        )
        self.stdout.write(secret)

    def _user(self, email: str, create: bool):
        users = list(get_user_model().objects.filter(email__iexact=email)[:2])
        if len(users) > 1:
            raise CommandError(f"More than one user has the email {email}; use the admin.")
        if users:
            return users[0]
        if not create:
            raise CommandError(
                f"No developer has the email {email}. Pass --create-account to create one."
            )
        user = get_user_model()(email=email)
        get_adapter().populate_username(None, user)
        user.set_unusable_password()
        user.save()
        EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
        self.stderr.write(f"Created the developer {email} (email verified, no password yet).")
        return user

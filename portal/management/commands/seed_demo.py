"""Seed a demo: free / pro / enterprise tiers on Stripe (the emulator offline), two logins.

Idempotent: tiers an operator already edited are left as they are; users are created once.
"""

from decimal import Decimal

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from billing.models import Tier
from billing.selectors import FREE_TIER_DEFAULTS
from portal.services import account_ensure

DEMO_TIERS = [
    # The free tier every installation starts with (made by a migration, or on first need).
    {"slug": "free", **FREE_TIER_DEFAULTS, "is_default": True},
    {
        "slug": "pro",
        "name": "Pro",
        "description": "For production apps: more units, heavier endpoints, billed overage.",
        "base_price_cents": 2_900,
        "included_units": 50_000,
        "rate_limit_per_minute": 600,
        "overage_policy": Tier.OveragePolicy.BILL,
        "overage_unit_price_cents": Decimal("0.1"),
        "scopes": ["basic", "compute"],
        "support_level": "Email, next business day",
        "sort_order": 10,
    },
    {
        "slug": "enterprise",
        "name": "Enterprise",
        "description": "High volume with a monthly spend cap and priority support.",
        "base_price_cents": 49_900,
        "included_units": 2_000_000,
        "rate_limit_per_minute": 6_000,
        "overage_policy": Tier.OveragePolicy.BILL,
        "overage_unit_price_cents": Decimal("0.05"),
        "spend_cap_cents": 100_000,
        "scopes": ["basic", "compute"],
        "support_level": "Priority, 4-hour response",
        "sort_order": 20,
    },
]
DEMO_DEVELOPER = ("demo@meterdesk.local", "meterdesk-demo")
DEMO_ADMIN = ("admin@meterdesk.local", "meterdesk-admin")


class Command(BaseCommand):
    help = "Seed demo tiers (pushed to Stripe), a verified demo developer and an admin."

    def add_arguments(self, parser):
        parser.add_argument("--no-stripe", action="store_true", help="Do not push tiers to Stripe.")
        parser.add_argument(
            "--no-logins",
            action="store_true",
            help="Do not print the demo logins (serve prints them beside the portal's URL).",
        )

    def handle(self, *args, no_stripe: bool, no_logins: bool = False, **options):
        if settings.PRODUCTION:
            raise CommandError(
                "seed_demo creates well-known passwords; it refuses to run in production."
            )
        with transaction.atomic():
            created = [tier.name for tier in self._seed_tiers()]
            developer = self._seed_user(*DEMO_DEVELOPER, staff=False)
            admin = self._seed_user(*DEMO_ADMIN, staff=True)
            account_ensure(owner=developer)
        if created:
            self.stdout.write(f"Created tiers: {', '.join(created)}")
        if not no_stripe:
            call_command("sync_tiers", stdout=self.stdout)
            call_command("create_webhook_endpoint", stdout=self.stdout)
        if no_logins:
            return
        site = settings.SITE_URL
        self.stdout.write(self.style.SUCCESS("Demo logins:"))
        self.stdout.write(
            f"  developer  {developer.email} / {DEMO_DEVELOPER[1]}  {site}/accounts/login/"
        )
        self.stdout.write(f"  operator   {admin.email} / {DEMO_ADMIN[1]}  {site}/admin/")

    def _seed_tiers(self) -> list[Tier]:
        created = []
        for data in DEMO_TIERS:
            data = dict(data)
            slug = data.pop("slug")
            # Only one default: the migration's free tier may already hold the flag.
            taken = Tier.objects.filter(is_default=True).exclude(slug=slug).exists()
            if data.get("is_default") and taken:
                data.pop("is_default")
            tier, was_created = Tier.objects.get_or_create(slug=slug, defaults=data)
            if was_created:
                created.append(tier)
        return created

    def _seed_user(self, email: str, password: str, *, staff: bool):
        User = get_user_model()
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User(username=email, email=email, is_staff=staff, is_superuser=staff)
            user.set_password(password)
            user.save()
        EmailAddress.objects.get_or_create(
            user=user, email=email, defaults={"primary": True, "verified": True}
        )
        return user

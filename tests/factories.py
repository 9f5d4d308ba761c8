"""factory-boy factories for every model the tests touch."""

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import factory
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from djstripe.models import Customer

from billing.models import Budget, BudgetAlert, MeterReport, Tier
from billing.selectors import tier_default
from gateway.models import Endpoint, Upstream
from metering.models import QuotaCredit, UsageAlert, UsageRollup
from portal.keys.format import new_prefix, new_secret
from portal.models import Account, ApiKey, Membership, Role

PASSWORD = "correct-horse-battery-staple"

ModelT = TypeVar("ModelT")


class ModelFactory(factory.django.DjangoModelFactory[ModelT]):
    """A model factory whose call, ``AccountFactory(...)``, is typed as the model it creates."""

    class Meta:
        abstract = True

    if TYPE_CHECKING:
        # factory-boy's metaclass turns the call into ``create()``, but its unannotated
        # ``__new__`` tells mypy a call returns the factory; mypy wants ``__new__`` to return
        # the class itself, which is exactly what factory-boy does not do.
        def __new__(cls, **kwargs: Any) -> ModelT: ...  # type: ignore[misc]


if TYPE_CHECKING:

    class IssuedApiKey(ApiKey):
        """What ``ApiKeyFactory`` returns: a key with its full secret, as shown once."""

        plaintext: str


def _verify_email(user: User, create: bool, extracted: bool | None, **kwargs: Any) -> None:
    """A verified primary address, as allauth leaves it after confirmation.

    ``verified=False`` leaves the user unconfirmed."""
    user.save()
    if create and extracted is not False:
        EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)


def _grant_permissions(
    user: User, create: bool, extracted: list[str] | None, **kwargs: Any
) -> None:
    if not create or not extracted:
        return
    for name in extracted:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )


class UserFactory(ModelFactory[User]):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"dev{n}")
    email = factory.Sequence(lambda n: f"dev{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)
    verified = factory.post_generation(_verify_email)


class StaffUserFactory(UserFactory):
    """An operator: staff (may open the admin), not a superuser, holding exactly the
    permissions passed as ``permissions=["portal.view_account", ...]``."""

    username = factory.Sequence(lambda n: f"operator{n}")
    email = factory.Sequence(lambda n: f"operator{n}@example.com")
    is_staff = True
    permissions = factory.post_generation(_grant_permissions)


class TierFactory(ModelFactory[Tier]):
    class Meta:
        model = Tier
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"tier-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    base_price_cents = 0
    included_units = 1000
    rate_limit_per_minute = 60
    overage_policy = Tier.OveragePolicy.BLOCK
    scopes = factory.LazyFunction(lambda: ["basic"])
    is_public = True
    sort_order = factory.Sequence(lambda n: n + 10)


class PaidTierFactory(TierFactory):
    slug = factory.Sequence(lambda n: f"pro-{n}")
    base_price_cents = 4900
    included_units = 100_000
    rate_limit_per_minute = 600
    overage_policy = Tier.OveragePolicy.BILL
    overage_unit_price_cents = Decimal("0.05")
    scopes = factory.LazyFunction(lambda: ["basic", "compute"])
    support_level = "Email, next business day"


class AccountFactory(ModelFactory[Account]):
    class Meta:
        model = Account
        skip_postgeneration_save = True

    owner = factory.SubFactory(UserFactory)
    tier = factory.LazyFunction(tier_default)
    # Signed up a day ago: usage a test places minutes in the past still falls in this period.
    period_start = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))

    @factory.post_generation
    def owner_membership(obj: Account, create: bool, extracted: Any, **kwargs: Any) -> None:
        """The owner is a member with the owner role, as ``account_create`` makes them."""
        if create:
            Membership.objects.get_or_create(
                account=obj, user=obj.owner, defaults={"role": Role.OWNER}
            )


class MembershipFactory(ModelFactory[Membership]):
    """A member of an organisation (a developer, unless ``role`` says otherwise)."""

    class Meta:
        model = Membership

    account = factory.SubFactory(AccountFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.DEVELOPER


class ApiKeyFactory(ModelFactory["IssuedApiKey"]):
    """An API key; the full key is on ``key.plaintext``, as it is shown once to the developer."""

    class Meta:
        model = ApiKey

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"key {n}")
    prefix = factory.LazyFunction(new_prefix)
    secret = factory.LazyFunction(new_secret)

    @classmethod
    def _create(cls, model_class, *args, secret: str, **kwargs):
        key = model_class.objects.create(*args, secret_hash=ApiKey.hash_secret(secret), **kwargs)
        key.plaintext = f"{key.prefix}_{secret}"
        return key


class UsageRollupFactory(ModelFactory[UsageRollup]):
    class Meta:
        model = UsageRollup

    account = factory.SubFactory(AccountFactory)
    api_key = None
    endpoint = "lookup"
    minute = factory.LazyFunction(lambda: timezone.now().replace(second=0, microsecond=0))
    units = 1
    requests = 1


class MeterReportFactory(ModelFactory[MeterReport]):
    class Meta:
        model = MeterReport

    account = factory.SubFactory(AccountFactory)
    window_start = factory.LazyFunction(
        lambda: timezone.now().replace(minute=0, second=0, microsecond=0)
    )
    window_end = factory.LazyAttribute(lambda o: o.window_start + timedelta(hours=1))
    units = 10
    identifier = factory.Sequence(lambda n: f"mdk-report-{n}")
    event_name = "meterdesk_api_units"
    stripe_customer_id = "cus_test"


class UsageAlertFactory(ModelFactory[UsageAlert]):
    class Meta:
        model = UsageAlert

    account = factory.SubFactory(AccountFactory)
    period_start = factory.LazyAttribute(lambda o: o.account.current_period()[0])
    threshold = 80


class QuotaCreditFactory(ModelFactory[QuotaCredit]):
    class Meta:
        model = QuotaCredit

    account = factory.SubFactory(AccountFactory)
    period_start = factory.LazyAttribute(lambda o: o.account.current_period()[0])
    units = 100
    reason = "Goodwill after an outage"


class StripeCustomerFactory(ModelFactory[Customer]):
    """dj-stripe's copy of a Stripe customer; pass ``id`` of one the emulator knows."""

    class Meta:
        model = Customer

    id = factory.Sequence(lambda n: f"cus_test{n:06d}")
    livemode = False


class BudgetFactory(ModelFactory[Budget]):
    class Meta:
        model = Budget

    account = factory.SubFactory(AccountFactory)
    amount_cents = 10_000
    alert_percents = factory.LazyFunction(lambda: [50, 80, 100])


class BudgetAlertFactory(ModelFactory[BudgetAlert]):
    class Meta:
        model = BudgetAlert

    account = factory.SubFactory(AccountFactory)
    period_start = factory.LazyAttribute(lambda o: o.account.current_period()[0])
    threshold_cents = 5_000
    spent_cents = 5_100
    budget_cents = 10_000


class UpstreamFactory(ModelFactory[Upstream]):
    class Meta:
        model = Upstream
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"upstream-{n}")
    base_url = "http://127.0.0.1:9"


class EndpointFactory(ModelFactory[Endpoint]):
    class Meta:
        model = Endpoint

    upstream = factory.SubFactory(UpstreamFactory)
    operation_id = factory.Sequence(lambda n: f"operation{n}")
    method = "GET"
    public_path = factory.Sequence(lambda n: f"/things{n}/{{word}}")
    upstream_path = factory.LazyAttribute(lambda o: o.public_path)
    cost = 1
    max_cost = factory.LazyAttribute(lambda o: o.cost)

"""Who may do what in an organisation: the table of roles by actions, tried against the real pages
by a member of each role; the table itself (``portal.permissions.ROLE_ACTIONS``) held to the
one in docs/teams.md; and a non-member, who gets 404 for every URL that names something of the
organisation."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.models import Account, ApiKey, Invitation, Membership, Role
from portal.permissions import ROLE_ACTIONS, Action
from tests.billing.conftest import catalog, stripe_api  # noqa: F401 - the emulator's tiers
from tests.factories import PASSWORD, AccountFactory, ApiKeyFactory, MembershipFactory

pytestmark = pytest.mark.django_db

DOCS = Path(__file__).resolve().parents[2] / "docs" / "teams.md"
OWNER, ADMIN, DEVELOPER, BILLING = Role.OWNER, Role.ADMIN, Role.DEVELOPER, Role.BILLING


@dataclass
class Organisation:
    account: Account
    # One member of each role; the owner is the organisation's primary owner.
    members: dict[Role, User]
    # Another developer, the one whose key and membership the members act on.
    teammate: Membership
    teammate_key: ApiKey
    # A key each member made (a billing member's from before they were made billing).
    own_keys: dict[Role, ApiKey]


@pytest.fixture
def organisation() -> Organisation:
    account = AccountFactory(name="Acme")
    members = {OWNER: account.owner}
    for role in (ADMIN, DEVELOPER, BILLING):
        members[role] = MembershipFactory(account=account, role=role).user
    teammate = MembershipFactory(account=account, role=DEVELOPER)
    return Organisation(
        account=account,
        members=members,
        teammate=teammate,
        teammate_key=ApiKeyFactory(account=account, created_by=teammate.user),
        own_keys={
            role: ApiKeyFactory(account=account, created_by=user) for role, user in members.items()
        },
    )


# What one row does as the member of ``role``: the request and its answer.
Attempt = Callable[[Client, Organisation, Role], int]


def _get(name: str, *args: object) -> Attempt:
    return lambda client, org, role: client.get(reverse(name, args=args)).status_code


def _post(name: str, data: dict[str, str] | None = None) -> Attempt:
    return lambda client, org, role: client.post(reverse(name), data or {}).status_code


def _on_key(name: str, whose: str, data: dict[str, str] | None = None) -> Attempt:
    def attempt(client: Client, org: Organisation, role: Role) -> int:
        key = org.teammate_key if whose == "teammate" else org.own_keys[role]
        return client.post(reverse(name, args=[key.pk]), data or {}).status_code

    return attempt


def _on_teammate(name: str) -> Attempt:
    def attempt(client: Client, org: Organisation, role: Role) -> int:
        return client.post(reverse(name, args=[org.teammate.pk])).status_code

    return attempt


def _checkout(client: Client, org: Organisation, role: Role) -> int:
    return client.post(reverse("billing:checkout"), {"tier": "pro"}).status_code


@dataclass(frozen=True)
class Row:
    what: str
    # The action the page asks for: its allowed roles in ROLE_ACTIONS are the ones answered
    # 2xx or 3xx below (test_each_row_lets_through_the_roles_the_table_allows).
    action: Action
    attempt: Attempt
    # What the owner, the admin, the developer and the billing member get, in that order.
    answers: tuple[int, int, int, int]
    # Needs the Stripe emulator (the allowed roles leave for Checkout).
    stripe: bool = False

    def answer(self, role: Role) -> int:
        return self.answers[ROLE_ORDER.index(role)]


ROLE_ORDER = (OWNER, ADMIN, DEVELOPER, BILLING)
NO_GRACE = {"grace_seconds": "0"}
INVITE = {"email": "new@example.com", "role": "developer"}

# The answers: (owner, admin, developer, billing).
ROWS = [
    Row("view keys", Action.KEYS_VIEW_OWN, _get("portal:keys"), (200, 200, 200, 403)),
    Row(
        "create a key",
        Action.KEY_CREATE,
        _post("portal:key-create", {"name": "ci", "form_token": "once"}),
        (200, 200, 200, 403),
    ),
    # A developer cannot see another member's key: 404, as for any key that is not theirs.
    Row(
        "revoke another member's key",
        Action.KEY_REVOKE_ANY,
        _on_key("portal:key-revoke", "teammate"),
        (302, 302, 404, 403),
    ),
    Row(
        "roll another member's key",
        Action.KEY_REVOKE_ANY,
        _on_key("portal:key-roll", "teammate", NO_GRACE),
        (200, 200, 404, 403),
    ),
    Row(
        "revoke one's own key",
        Action.KEY_REVOKE_OWN,
        _on_key("portal:key-revoke", "own"),
        (302, 302, 302, 403),
    ),
    Row(
        "roll one's own key",
        Action.KEY_REVOKE_OWN,
        _on_key("portal:key-roll", "own", NO_GRACE),
        (200, 200, 200, 403),
    ),
    Row("see usage", Action.USAGE_VIEW, _get("metering:usage"), (200, 200, 200, 200)),
    Row("download usage", Action.USAGE_VIEW, _get("metering:usage-csv"), (200, 200, 200, 200)),
    Row("change tier", Action.TIER_CHANGE, _checkout, (303, 403, 403, 303), stripe=True),
    Row("manage the card", Action.TIER_CHANGE, _post("billing:portal"), (302, 403, 403, 302)),
    Row("see invoices", Action.INVOICES_VIEW, _get("billing:overview"), (200, 403, 403, 200)),
    Row(
        "budgets",
        Action.BUDGET_MANAGE,
        _post("billing:budget", {"action": "remove"}),
        (303, 403, 403, 303),
    ),
    Row(
        "alert settings",
        Action.ALERTS_MANAGE,
        _post("metering:alert-settings"),
        (302, 403, 403, 302),
    ),
    Row(
        "export the organisation's data",
        Action.ORGANISATION_EXPORT,
        _get("portal:account-export", "usage.csv"),
        (200, 403, 403, 403),
    ),
    Row("invite", Action.MEMBER_INVITE, _post("portal:invite", INVITE), (302, 302, 403, 403)),
    Row(
        "remove a member",
        Action.MEMBER_REMOVE,
        _on_teammate("portal:member-remove"),
        (302, 302, 403, 403),
    ),
    Row(
        "transfer ownership",
        Action.OWNERSHIP_TRANSFER,
        _on_teammate("portal:ownership-transfer"),
        (302, 403, 403, 403),
    ),
    Row(
        "delete the organisation",
        Action.ORGANISATION_DELETE,
        _post("portal:organisation-delete", {"organisation-password": PASSWORD}),
        (302, 403, 403, 403),
    ),
]


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.what)
def test_each_role_gets_what_the_table_says(request, client, organisation, row, role):
    if row.stripe:
        request.getfixturevalue("catalog")
    client.force_login(organisation.members[role])

    assert row.attempt(client, organisation, role) == row.answer(role)


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.what)
def test_each_row_lets_through_the_roles_the_table_allows(row):
    """The roles a page lets through are the ones ROLE_ACTIONS allows its action."""
    let_through = {role for role in Role if row.answer(role) < 400}
    assert let_through == {role for role in Role if row.action in ROLE_ACTIONS[role]}


def test_a_refused_page_names_the_role_and_the_roles_that_may(client, organisation):
    client.force_login(organisation.members[DEVELOPER])

    response = client.get(reverse("billing:overview"))

    assert response.status_code == 403
    page = response.content.decode()
    assert "Your role in Acme is <strong>Developer</strong>" in page
    assert "this page needs <strong>Owner</strong> or <strong>Billing</strong>" in page
    assert "Ask an owner or admin." in page


def test_a_refusal_asked_for_as_json_is_json(client, organisation):
    client.force_login(organisation.members[BILLING])

    response = client.get(reverse("portal:keys"), HTTP_ACCEPT="application/json")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert "does not allow this" in response.json()["detail"]


@pytest.mark.parametrize(
    ("role", "shown", "hidden"),
    [
        (OWNER, ["API keys", "Usage", "Billing"], []),
        (ADMIN, ["API keys", "Usage"], ["Billing"]),
        (DEVELOPER, ["API keys", "Usage"], ["Billing"]),
        (BILLING, ["Usage", "Billing"], ["API keys"]),
    ],
)
def test_the_navigation_lists_only_what_the_role_opens(client, organisation, role, shown, hidden):
    client.force_login(organisation.members[role])

    nav = _main_nav(client.get(reverse("portal:dashboard")).content.decode())

    for label in shown:
        assert f">{label}</a>" in nav
    for label in hidden:
        assert f">{label}</a>" not in nav


def _main_nav(page: str) -> str:
    return page.split('aria-label="Main"', 1)[1].split("</nav>", 1)[0]


# --- A non-member ---------------------------------------------------------------------------


@pytest.fixture
def invitation(organisation) -> Invitation:
    return Invitation.objects.create(
        account=organisation.account,
        email="invited@example.com",
        role=DEVELOPER,
        token_hash=Invitation.hash_token("not-a-real-token"),
        invited_by=organisation.account.owner,
        expires_at=timezone.now() + timedelta(days=7),
    )


def _org_urls(org: Organisation, invitation: Invitation) -> list[str]:
    """Every organisation-scoped URL that names one of its objects."""
    return [
        reverse("portal:key-revoke", args=[org.teammate_key.pk]),
        reverse("portal:key-roll", args=[org.teammate_key.pk]),
        reverse("portal:organisation-switch", args=[org.account.pk]),
        reverse("portal:member-remove", args=[org.teammate.pk]),
        reverse("portal:member-role", args=[org.teammate.pk]),
        reverse("portal:ownership-transfer", args=[org.teammate.pk]),
        reverse("portal:invitation-revoke", args=[invitation.pk]),
    ]


def test_a_non_member_gets_404_for_everything_of_the_organisation(
    outsider_client, organisation, invitation
):
    """The outsider owns an organisation of their own, so every role check passes: what they
    are refused is the object, which is not theirs to learn exists."""
    answers = {
        url: outsider_client.post(url, {"grace_seconds": "0", "role": "admin"}).status_code
        for url in _org_urls(organisation, invitation)
    }

    assert answers == dict.fromkeys(answers, 404)
    organisation.teammate_key.refresh_from_db()
    assert organisation.teammate_key.is_active()
    assert Membership.objects.filter(pk=organisation.teammate.pk, role=DEVELOPER).exists()
    invitation.refresh_from_db()
    assert invitation.is_open()


# --- The table and its documentation ----------------------------------------------------------


def _documented_table() -> dict[Role, set[Action]]:
    """The "Roles" section's table of docs/teams.md: a row per action (named by its value in
    backticks), a column per role (named by its label), ✓ where the role may."""
    section = DOCS.read_text().split("\n## Roles\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    roles = [Role(label.lower()) for label in header[1:]]
    table: dict[Role, set[Action]] = {role: set() for role in roles}
    seen: list[Action] = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        named = re.findall(r"`([a-z_.]+)`", cells[0])
        assert len(named) == 1, f"a row names one action: {cells[0]}"
        action = Action(named[0])
        seen.append(action)
        for role, cell in zip(roles, cells[1:], strict=True):
            assert cell in ("✓", "—"), f"{action} for {role}: {cell!r}"
            if cell == "✓":
                table[role].add(action)
    assert sorted(seen) == sorted(Action), "each action is one row of the table"
    return table


def test_the_documented_roles_are_the_code_s():
    assert _documented_table() == {role: set(actions) for role, actions in ROLE_ACTIONS.items()}


def test_every_role_has_a_row_of_the_table():
    assert set(ROLE_ACTIONS) == set(Role)


@pytest.mark.parametrize("role", list(Role))
def test_a_membership_allows_what_its_role_does(role):
    membership = Membership(role=role)

    assert {action for action in Action if membership.allows(action)} == ROLE_ACTIONS[role]

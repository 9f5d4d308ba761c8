"""The audit log cannot be rewritten or deleted: not through the ORM's bulk calls, and not in
the database either (the triggers of migration 0004, on SQLite and, in CI's second pass,
PostgreSQL). Deleting an account or an operator still works: their entries are unlinked and
keep their content.

The suite runs without migrations, so the triggers are installed here by the migration's own
functions (the very code ``migrate`` runs), in a transactional test: SQLite's schema editor
cannot run inside the test's transaction. They are removed again before the database is
flushed, which deletes every row.
"""

from importlib import import_module

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import RunPython

from portal.audit import audit_record
from portal.models import Account, AuditEntry
from tests.factories import AccountFactory, StaffUserFactory

MIGRATION = import_module("portal.migrations.0004_auditentry_immutable")


def run_migration_code(code) -> None:
    with connection.schema_editor() as editor:
        code(apps, editor)


@pytest.fixture
def triggers(transactional_db):
    """The database with migration 0004 applied (its triggers), reverted afterwards."""
    [operation] = MIGRATION.Migration.operations
    run_migration_code(operation.code)
    yield
    run_migration_code(operation.reverse_code)


def new_entry(account: Account | None = None, actor: User | None = None) -> AuditEntry:
    return audit_record(
        actor=actor or StaffUserFactory(),
        action="account.tier_change",
        account=account or AccountFactory(),
        before={"tier": "free"},
        after={"tier": "pro"},
        reason="Upgrade deal",
    )


def refused_by_the_database(statement) -> str:
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        statement()
    return str(refused.value)


@pytest.mark.django_db
def test_the_orm_refuses_bulk_updates_and_deletes():
    account = AccountFactory()
    entry = new_entry(account=account)

    with pytest.raises(ValueError, match="never changed"):
        AuditEntry.objects.filter(pk=entry.pk).update(reason="Rewritten")
    with pytest.raises(ValueError, match="never changed"):
        account.audit_entries.update(reason="Rewritten")
    with pytest.raises(ValueError, match="never deleted"):
        AuditEntry.objects.all().delete()
    entry.reason = "Rewritten"
    # bulk_update runs in a transaction without a savepoint: its failure spoils the enclosing one.
    with pytest.raises(ValueError, match="never changed"), transaction.atomic():
        AuditEntry.objects.bulk_update([entry], ["reason"])

    assert AuditEntry.objects.get().reason == "Upgrade deal"


@pytest.mark.parametrize(
    "change",
    [
        {"reason": "Rewritten history"},
        {"action": "account.rename"},
        {"target": "someone@else.example"},
        {"after": {"tier": "enterprise"}},
        {"before": {}},
        {"created": "2000-01-01T00:00:00Z"},
    ],
)
def test_the_database_refuses_to_change_an_entry(triggers, change):
    entry = new_entry()
    # The plain base manager: the same SQL the ORM's bulk update would send, unguarded.
    rows = AuditEntry._base_manager.filter(pk=entry.pk)

    message = refused_by_the_database(lambda: rows.update(**change))

    assert "audit entries are never changed" in message
    stored = AuditEntry.objects.get()
    assert (stored.action, stored.reason, stored.after) == (
        "account.tier_change",
        "Upgrade deal",
        {"tier": "pro"},
    )


def test_the_database_refuses_to_point_an_entry_at_another_account_or_operator(triggers):
    entry = new_entry()
    rows = AuditEntry._base_manager.filter(pk=entry.pk)

    for change in [{"account": AccountFactory()}, {"actor": StaffUserFactory()}]:
        assert "never changed" in refused_by_the_database(lambda c=change: rows.update(**c))

    stored = AuditEntry.objects.get()
    assert (stored.account_id, stored.actor_id) == (entry.account_id, entry.actor_id)


def test_the_database_refuses_to_delete_an_entry_even_in_raw_sql(triggers):
    entry = new_entry()

    def raw_delete():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM portal_auditentry WHERE id = %s", [entry.pk])

    assert "never deleted" in refused_by_the_database(raw_delete)
    assert "never deleted" in refused_by_the_database(
        lambda: AuditEntry._base_manager.filter(pk=entry.pk)._raw_delete(connection.alias)
    )
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_deleting_the_account_and_the_operator_unlinks_their_entries_and_keeps_them(triggers):
    account, operator = AccountFactory(), StaffUserFactory()
    entry = new_entry(account=account, actor=operator)

    account.owner.delete()
    operator.delete()

    stored = AuditEntry.objects.get()
    assert (stored.account, stored.actor) == (None, None)
    assert (stored.target, stored.action, stored.reason) == (
        account.owner.email,
        "account.tier_change",
        "Upgrade deal",
    )
    assert (stored.before, stored.after, stored.created) == (
        entry.before,
        entry.after,
        entry.created,
    )


def test_the_migration_reverses_cleanly(triggers):
    entry = new_entry()
    [operation] = MIGRATION.Migration.operations
    rows = AuditEntry._base_manager.filter(pk=entry.pk)

    run_migration_code(operation.reverse_code)
    rows.update(reason="Changed while the migration was reverted")
    run_migration_code(operation.code)

    assert "never changed" in refused_by_the_database(lambda: rows.update(reason="x"))
    assert AuditEntry.objects.get().reason == "Changed while the migration was reverted"


def test_a_later_migration_that_alters_the_audit_table_installs_the_triggers_again(settings):
    """On SQLite most table alterations rebuild the table, which drops its triggers."""
    settings.MIGRATION_MODULES = {}  # the real migrations, not the suite's --no-migrations
    migrations = MigrationLoader(None, ignore_no_migrations=True).disk_migrations
    assert ("portal", "0004_auditentry_immutable") in migrations

    for (app, name), migration in sorted(migrations.items()):
        if app != "portal" or name <= "0004_auditentry_immutable":
            continue
        touches = any(
            getattr(op, "model_name", getattr(op, "name", "")).lower() == "auditentry"
            for op in migration.operations
        )
        reinstalls = any(
            isinstance(op, RunPython) and op.code is MIGRATION.install
            for op in migration.operations
        )
        assert reinstalls or not touches, f"{name} must install the audit triggers again"

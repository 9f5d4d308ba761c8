"""Audit entries are immutable in the database itself, not only in the ORM: a trigger refuses
every DELETE, and every UPDATE but one: setting ``account_id`` or ``actor_id`` to NULL, which
is how Django's ``on_delete=SET_NULL`` unlinks the entries of a deleted account or operator
(an UPDATE it issues before the DELETE). The entry's own content (action, target, before,
after, reason, created) can never change, so the history survives the account.

One trigger function on PostgreSQL (``RAISE EXCEPTION`` with SQLSTATE 23000, which Django
raises as IntegrityError; PostgreSQL docs, "Errors and Messages" and "Trigger Functions"); two
triggers on SQLite (``RAISE(ABORT, ...)``, a constraint error, also IntegrityError; SQLite docs,
"CREATE TRIGGER", "The RAISE() function"). Written here, not imported from the app, so this
migration keeps doing what it did when the app changes.

Not covered, on purpose: TRUNCATE on PostgreSQL (``manage.py flush`` and the test suite's
teardown use it) and anyone allowed to drop the trigger. On SQLite, a later migration that
rebuilds this table (most AlterField operations do) drops its triggers and must install them
again (tests/portal/test_audit_log_immutable.py checks that it does).
"""

from django.db import migrations

# The columns an entry is made of; only the two links may change, and only to NULL.
CONTENT = ["id", "action", "target", "before", "after", "reason", "created"]
LINKS = ["account_id", "actor_id"]

REFUSED_UPDATE = "audit entries are never changed (only a deleted account or operator is unlinked)"
REFUSED_DELETE = "audit entries are never deleted"


def _changed(columns: list[str], distinct: str) -> str:
    """SQL true when any of ``columns`` differs between OLD and NEW (NULLs compared too)."""
    return " OR ".join(f'NEW."{c}" {distinct} OLD."{c}"' for c in columns)


def _relinked(distinct: str) -> str:
    """SQL true when a link is set to anything but NULL (a re-pointed entry, not an unlinked
    one)."""
    return " OR ".join(f'(NEW."{c}" IS NOT NULL AND NEW."{c}" {distinct} OLD."{c}")' for c in LINKS)


POSTGRESQL_INSTALL = [
    f"""
    CREATE OR REPLACE FUNCTION portal_auditentry_immutable() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'portal_auditentry %: {REFUSED_DELETE}', OLD.id
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF {_changed(CONTENT, "IS DISTINCT FROM")} OR {_relinked("IS DISTINCT FROM")} THEN
            RAISE EXCEPTION 'portal_auditentry %: {REFUSED_UPDATE}', OLD.id
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER portal_auditentry_immutable
    BEFORE UPDATE OR DELETE ON portal_auditentry
    FOR EACH ROW EXECUTE FUNCTION portal_auditentry_immutable()
    """,
]
POSTGRESQL_UNINSTALL = [
    "DROP TRIGGER IF EXISTS portal_auditentry_immutable ON portal_auditentry",
    "DROP FUNCTION IF EXISTS portal_auditentry_immutable()",
]

SQLITE_INSTALL = [
    f"""
    CREATE TRIGGER portal_auditentry_no_update BEFORE UPDATE ON portal_auditentry
    WHEN {_changed(CONTENT, "IS NOT")} OR {_relinked("IS NOT")}
    BEGIN
        SELECT RAISE(ABORT, 'portal_auditentry: {REFUSED_UPDATE}');
    END
    """,
    f"""
    CREATE TRIGGER portal_auditentry_no_delete BEFORE DELETE ON portal_auditentry
    BEGIN
        SELECT RAISE(ABORT, 'portal_auditentry: {REFUSED_DELETE}');
    END
    """,
]
SQLITE_UNINSTALL = [
    "DROP TRIGGER IF EXISTS portal_auditentry_no_update",
    "DROP TRIGGER IF EXISTS portal_auditentry_no_delete",
]

STATEMENTS = {
    "postgresql": (POSTGRESQL_INSTALL, POSTGRESQL_UNINSTALL),
    "sqlite": (SQLITE_INSTALL, SQLITE_UNINSTALL),
}


def _run(schema_editor, statements: list[str]) -> None:
    for sql in statements:
        # params=None: the SQL goes as written (no %-placeholder parsing), as RunSQL sends it.
        schema_editor.execute(sql, params=None)


def _statements(schema_editor) -> tuple[list[str], list[str]]:
    vendor = schema_editor.connection.vendor
    if vendor not in STATEMENTS:
        raise NotImplementedError(
            f"No audit-log triggers for the {vendor} database; Meterdesk runs on PostgreSQL "
            "or SQLite."
        )
    return STATEMENTS[vendor]


def install(apps, schema_editor) -> None:
    _run(schema_editor, _statements(schema_editor)[0])


def uninstall(apps, schema_editor) -> None:
    _run(schema_editor, _statements(schema_editor)[1])


class Migration(migrations.Migration):
    dependencies = [("portal", "0003_account_cancel_subscription_permission")]
    operations = [migrations.RunPython(install, uninstall)]

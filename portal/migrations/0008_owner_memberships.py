"""Every account of before teams becomes an organisation whose owner is its one developer: an
owner membership for ``Account.owner``, and that owner recorded as the maker of every key the
account holds. Nothing else moves: keys, usage, meter reports, periods, the subscription and
the Stripe customer were the account's and stay the organisation's, which is the same row."""

from django.db import migrations
from django.db.models import OuterRef, Subquery

BATCH = 1000


def owners_become_members(apps, schema_editor):
    Account = apps.get_model("portal", "Account")
    Membership = apps.get_model("portal", "Membership")
    ApiKey = apps.get_model("portal", "ApiKey")
    members = Membership.objects.values_list("account_id", flat=True)
    pending = Account.objects.exclude(pk__in=members).values_list("pk", "owner_id", "created")
    Membership.objects.bulk_create(
        (
            Membership(account_id=pk, user_id=owner_id, role="owner", created=created)
            for pk, owner_id, created in pending.iterator(chunk_size=BATCH)
        ),
        batch_size=BATCH,
    )
    owner = Account.objects.filter(pk=OuterRef("account_id")).values("owner_id")[:1]
    ApiKey.objects.filter(created_by__isnull=True).update(created_by_id=Subquery(owner))


class Migration(migrations.Migration):
    dependencies = [("portal", "0007_organisations")]

    # Backwards, the memberships and makers simply go with 0007's tables and column.
    operations = [migrations.RunPython(owners_become_members, migrations.RunPython.noop)]

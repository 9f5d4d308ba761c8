"""The demo's Enterprise tier promised "a spend cap you choose", which no developer can set: the
cap is the tier's, set by the operator. The description seed_demo wrote is corrected where it
is still word for word the demo's; a description an operator wrote is left alone."""

from django.db import migrations

PROMISE = "High volume with a spend cap you choose and priority support."
CORRECTED = "High volume with a monthly spend cap and priority support."


def correct(apps, schema_editor):
    tier_model = apps.get_model("billing", "Tier")
    tier_model.objects.filter(slug="enterprise", description=PROMISE).update(description=CORRECTED)


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0004_auditentry_immutable"),
        ("billing", "0001_initial"),
    ]
    # Reversing leaves the corrected text: the promise was never true.
    operations = [migrations.RunPython(correct, migrations.RunPython.noop)]

"""Every installation starts with one free tier, so signup works before an operator edits tiers."""

from django.db import migrations


def create_free_tier(apps, schema_editor):
    Tier = apps.get_model("billing", "Tier")
    if Tier.objects.exists():
        return
    Tier.objects.create(
        slug="free",
        name="Free",
        description="Try the API at no cost.",
        base_price_cents=0,
        included_units=1000,
        rate_limit_per_minute=60,
        overage_policy="block",
        scopes=["basic"],
        support_level="Community",
        is_public=True,
        is_default=True,
        sort_order=0,
    )


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_initial")]
    operations = [migrations.RunPython(create_free_tier, migrations.RunPython.noop)]

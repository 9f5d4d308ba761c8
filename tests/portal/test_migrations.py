"""The suite runs without migrations for speed (dj-stripe's take ~40 s); this keeps them honest."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_models_and_migrations_agree(settings):
    # The suite's --no-migrations hides every migration from the loader; without this,
    # makemigrations would compare the models with nothing and always agree.
    settings.MIGRATION_MODULES = {}
    out = StringIO()

    call_command("makemigrations", "--check", "--dry-run", stdout=out)

    assert "No changes detected" in out.getvalue()

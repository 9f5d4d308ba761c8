"""manage.py flush_last_used: write the buffered last-used times now."""

from io import StringIO

import pytest
from django.core.management import call_command

from portal.keys.last_used import last_used_buffer


@pytest.mark.django_db
def test_command_writes_the_buffer_and_says_how_many(api_key):
    last_used_buffer.record(api_key.pk)
    out = StringIO()

    call_command("flush_last_used", stdout=out)

    api_key.refresh_from_db()
    assert api_key.last_used is not None
    assert "1 API key" in out.getvalue()

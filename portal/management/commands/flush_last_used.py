"""``manage.py flush_last_used``: write the API keys' buffered last-used times now.

Flushes the buffer of the process it runs in, like the beat task: useful in the embedded mode
and in tests; each production web process flushes its own (see portal/keys/last_used.py).
"""

from django.core.management.base import BaseCommand

from portal.services import api_key_flush_last_used


class Command(BaseCommand):
    help = "Write the API keys' last-used times buffered in this process."

    def handle(self, *args, **options):
        written = api_key_flush_last_used()
        self.stdout.write(f"Wrote the last-used time of {written} API key(s).")

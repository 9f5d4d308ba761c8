"""``manage.py import_openapi FILE_OR_URL --upstream http://api.internal:8080 [--name NAME]``

Turns an OpenAPI 3.0/3.1 document (JSON or YAML, a file or an http(s) URL) into the endpoints
Meterdesk sells through its gateway; see ``gateway.openapi`` for the ``x-meterdesk-*``
extensions. Idempotent: run it again after every change of the document.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.text import slugify

from gateway.models import validate_base_url
from gateway.openapi import OpenAPIError, openapi_load, openapi_operations
from gateway.services import ImportRefused, openapi_import


class Command(BaseCommand):
    help = "Import an OpenAPI 3 document's operations as endpoints sold through the gateway."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", help="A file path or an http(s) URL of the document.")
        parser.add_argument(
            "--upstream",
            required=True,
            help="Base URL calls are proxied to, e.g. http://api.internal:8080",
        )
        parser.add_argument(
            "--name",
            help="The upstream's name (a slug): the prefix of its endpoints' meter names. "
            "Default: from the document's title.",
        )

    def handle(self, *args, source: str, upstream: str, name: str | None, **options) -> None:
        try:
            validate_base_url(upstream)
        except ValidationError as exc:
            raise CommandError(f"--upstream {upstream!r}: {' '.join(exc.messages)}") from None
        try:
            parsed = openapi_operations(openapi_load(source))
        except OpenAPIError as exc:
            raise CommandError(str(exc)) from None
        slug = slugify(name or parsed.title)[:32].strip("-")
        if not slug:
            raise CommandError("Give the upstream a name with --name (the document has no title).")
        if name is not None and slug != name:
            raise CommandError(
                f"--name {name!r}: use a slug (letters, digits, '-', '_'), e.g. {slug!r}."
            )
        try:
            summary = openapi_import(parsed=parsed, upstream_url=upstream, name=slug)
        except (ImportRefused, ValidationError) as exc:
            detail = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            raise CommandError(f"Nothing was imported: {detail}") from None

        up = summary.upstream
        if summary.upstream_created:
            self.stdout.write(
                f"Upstream {up.name} created ({up.base_url}). Its signing secret, for the "
                f"upstream to verify Meterdesk-Signature (also on its admin page):\n"
                f"  {up.signing_secret}"
            )
        for label, names in (
            ("created", summary.created),
            ("updated", summary.updated),
            ("archived", summary.archived),
        ):
            for operation_id in names:
                self.stdout.write(f"  {label}: {operation_id}")
        for skipped in summary.skipped:
            self.stdout.write(f"  skipped (not sold): {skipped}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{up.name}: {len(summary.created)} created, {len(summary.updated)} updated, "
                f"{len(summary.archived)} archived, {len(summary.unchanged)} unchanged."
            )
        )

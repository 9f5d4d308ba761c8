"""``manage.py import_openapi``: an OpenAPI document becomes endpoints; re-imports are
idempotent, removed operations are archived, bad documents change nothing and say why."""

import json
from io import StringIO

import pytest
import yaml
from django.core.management import CommandError, call_command

from gateway.models import Endpoint, Upstream
from portal.models import AuditEntry
from tests.factories import EndpointFactory, UpstreamFactory
from tests.gateway.servers import AsgiServer

UPSTREAM = "http://api.internal:8080"


def document(**operations) -> dict:
    """A 3.1 document; each keyword is ``operationId=(method, path, extensions)``."""
    paths: dict = {}
    for operation_id, (method, path, extra) in operations.items():
        paths.setdefault(path, {})[method] = {
            "operationId": operation_id,
            "responses": {"200": {"description": "ok"}},
            **extra,
        }
    return {"openapi": "3.1.0", "info": {"title": "Catalog API", "version": "1"}, "paths": paths}


def run(tmp_path, doc, *args, suffix=".yaml") -> str:
    path = tmp_path / f"openapi{suffix}"
    path.write_text(yaml.safe_dump(doc) if suffix == ".yaml" else json.dumps(doc))
    out = StringIO()
    call_command("import_openapi", str(path), "--upstream", UPSTREAM, *args, stdout=out)
    return out.getvalue()


BASE = {
    "echo": ("get", "/echo/{word}", {"x-meterdesk-cost": 2, "x-meterdesk-scope": "basic"}),
    "countWords": (
        "post",
        "/words",
        {
            "x-meterdesk-cost": {"units": 1, "max": 20},
            "x-meterdesk-timeout": 10,
            "x-meterdesk-billable-statuses": [200, "3XX"],
        },
    ),
}


def test_first_import_creates_the_upstream_and_its_endpoints(db, tmp_path):
    out = run(tmp_path, document(**BASE))

    upstream = Upstream.objects.get()
    assert (upstream.name, upstream.base_url) == ("catalog-api", UPSTREAM)
    assert upstream.signing_secret in out
    echo = Endpoint.objects.get(operation_id="echo")
    assert (echo.method, echo.public_path, echo.upstream_path) == (
        "GET",
        "/echo/{word}",
        "/echo/{word}",
    )
    assert (echo.cost, echo.max_cost, echo.scope, echo.timeout_seconds) == (2, 2, "basic", None)
    assert echo.billable_statuses == list(range(200, 300))
    words = Endpoint.objects.get(operation_id="countWords")
    assert (words.cost, words.max_cost, words.timeout_seconds) == (1, 20, 10.0)
    assert words.billable_statuses == [200, *range(300, 400)]
    assert "2 created, 0 updated, 0 archived, 0 unchanged" in out


def test_json_documents_and_names_work_too(db, tmp_path):
    out = run(tmp_path, document(**BASE), "--name", "catalog", suffix=".json")

    assert Upstream.objects.get().name == "catalog"
    assert Endpoint.objects.get(operation_id="echo").meter_name == "catalog/echo"
    assert "catalog: 2 created" in out


def test_reimport_is_idempotent(db, tmp_path):
    run(tmp_path, document(**BASE))
    before = list(Endpoint.objects.values())

    out = run(tmp_path, document(**BASE))

    assert list(Endpoint.objects.values()) == before
    assert "0 created, 0 updated, 0 archived, 2 unchanged" in out
    assert "signing secret" not in out


def test_changed_operations_are_updated_and_removed_ones_archived_never_deleted(db, tmp_path):
    run(tmp_path, document(**BASE))
    changed = {"echo": ("get", "/echo/{word}", {"x-meterdesk-cost": 5})}

    out = run(tmp_path, document(**changed))

    echo = Endpoint.objects.get(operation_id="echo")
    assert (echo.cost, echo.scope, echo.archived_at) == (5, "", None)
    words = Endpoint.objects.get(operation_id="countWords")
    assert words.archived_at is not None
    assert "updated: echo" in out and "archived: countWords" in out
    assert "0 created, 1 updated, 1 archived, 0 unchanged" in out

    # Back in the document: revived, same row (its usage history still names it).
    run(tmp_path, document(**BASE))
    assert Endpoint.objects.get(operation_id="countWords").pk == words.pk
    assert Endpoint.objects.live().count() == 2


def test_each_import_writes_an_audit_entry(db, tmp_path):
    run(tmp_path, document(**BASE))
    run(tmp_path, document(**BASE))

    entries = AuditEntry.objects.filter(action="gateway.openapi_import").order_by("created")
    assert [e.after["created"] for e in entries] == [["echo", "countWords"], []]
    assert entries[1].after["unchanged"] == 2
    assert entries[0].target == "upstream catalog-api"


def test_operations_without_an_operation_id_are_named(db, tmp_path):
    doc = document(**BASE)
    doc["paths"]["/health"] = {"get": {"responses": {}}}
    doc["paths"]["/words"]["delete"] = {"responses": {}}

    with pytest.raises(CommandError) as refused:
        run(tmp_path, doc)

    assert "without an operationId" in str(refused.value)
    assert "GET /health" in str(refused.value) and "DELETE /words" in str(refused.value)
    assert not Endpoint.objects.exists() and not Upstream.objects.exists()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"swagger": "2.0", "paths": {}}, "Only OpenAPI 3.0 and 3.1"),
        ({"openapi": "3.1.0", "paths": {}}, "no paths"),
        (document(echo=("get", "/echo/{word}", {"x-meterdesk-cost": -1})), "x-meterdesk-cost"),
        (
            document(echo=("get", "/echo/{word}", {"x-meterdesk-cost": {"units": 5, "max": 2}})),
            "M >= N",
        ),
        (document(echo=("get", "/echo/{word}", {"x-meterdesk-timeout": 0})), "x-meterdesk-timeout"),
        (
            document(echo=("get", "/echo/{word}", {"x-meterdesk-billable-statuses": ["ok"]})),
            "x-meterdesk-billable-statuses",
        ),
        (document(echo=("get", "/echo/{a}/{a}", {})), "twice"),
        (document(echo=("get", "/echo/../x", {})), "'..'"),
        (document(echo=("get", "echo", {})), "start with '/'"),
        (
            {
                "openapi": "3.0.3",
                "paths": {
                    "/a": {"get": {"operationId": "same"}},
                    "/b": {"get": {"operationId": "same"}},
                },
            },
            "also used by",
        ),
    ],
)
def test_bad_documents_are_refused_with_the_reason(db, tmp_path, doc, message):
    with pytest.raises(CommandError) as refused:
        run(tmp_path, doc)
    assert message in str(refused.value)
    assert not Endpoint.objects.exists()


def test_unreadable_sources_are_refused(db, tmp_path):
    (tmp_path / "bad.yaml").write_text("paths: [unclosed")
    for source, message in [
        (str(tmp_path / "missing.yaml"), "Cannot read"),
        (str(tmp_path / "bad.yaml"), "neither JSON nor YAML"),
        ("ftp://example.com/openapi.yaml", "Only http:// and https://"),
    ]:
        with pytest.raises(CommandError) as refused:
            call_command("import_openapi", source, "--upstream", UPSTREAM)
        assert message in str(refused.value)


@pytest.mark.parametrize(
    "url",
    ["ftp://api.internal", "http://api.internal/?x=1", "http://u:p@api.internal", "api.internal"],
)
def test_upstream_must_be_a_plain_http_url(db, tmp_path, url):
    path = tmp_path / "openapi.yaml"
    path.write_text(yaml.safe_dump(document(**BASE)))
    with pytest.raises(CommandError, match="--upstream"):
        call_command("import_openapi", str(path), "--upstream", url)


def test_a_route_taken_by_another_upstream_is_refused(db, tmp_path):
    other = UpstreamFactory(name="other")
    EndpointFactory(upstream=other, operation_id="shout", public_path="/echo/{text}")

    with pytest.raises(CommandError) as refused:
        run(tmp_path, document(**BASE))

    assert "other/shout already answers" in str(refused.value)
    assert not Endpoint.objects.filter(upstream__name="catalog-api").exists()


def test_document_is_fetched_from_a_url(db):
    body = json.dumps(document(**BASE)).encode()

    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    server = AsgiServer(app).start()
    try:
        out = StringIO()
        call_command(
            "import_openapi",
            f"{server.url}/openapi.json",
            "--upstream",
            UPSTREAM,
            "--name",
            "fetched",
            stdout=out,
        )
    finally:
        server.stop()

    assert set(Endpoint.objects.values_list("operation_id", flat=True)) == {"echo", "countWords"}


def test_options_and_trace_are_skipped_and_said(db, tmp_path):
    doc = document(**BASE)
    doc["paths"]["/words"]["options"] = {"operationId": "wordsOptions"}

    out = run(tmp_path, doc)

    assert "skipped (not sold): OPTIONS /words" in out
    assert Endpoint.objects.count() == 2

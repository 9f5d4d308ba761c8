"""The gateway's invariants hold in the database, whatever writes the rows."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from gateway.models import Endpoint, Upstream
from tests.factories import EndpointFactory, UpstreamFactory

pytestmark = pytest.mark.django_db


def refused(**values) -> bool:
    try:
        with transaction.atomic():
            EndpointFactory(**values)
    except IntegrityError:
        return True
    return False


def test_max_cost_below_cost_is_refused():
    assert refused(cost=5, max_cost=4)
    assert not refused(cost=5, max_cost=5)


def test_one_live_endpoint_per_method_and_route():
    upstream = UpstreamFactory()
    EndpointFactory(upstream=upstream, public_path="/echo/{word}")
    # The same route with the parameter named otherwise, even on another upstream.
    assert refused(public_path="/echo/{text}")
    assert not refused(public_path="/echo/{text}", method="POST")
    assert not refused(public_path="/echo/{text}", archived_at=timezone.now())


def test_operation_ids_are_unique_per_upstream():
    upstream = UpstreamFactory()
    EndpointFactory(upstream=upstream, operation_id="echo")
    assert refused(upstream=upstream, operation_id="echo", public_path="/other")
    assert not refused(operation_id="echo", public_path="/other")


@pytest.mark.parametrize(
    "url", ["ftp://api.internal", "http://api.internal/?q=1", "http://api.internal/#top", "api"]
)
def test_upstream_url_must_be_http_without_query(url):
    with pytest.raises(IntegrityError), transaction.atomic():
        Upstream.objects.create(name="bad", base_url=url)


def test_unknown_method_and_relative_paths_are_refused():
    assert refused(method="TRACE")
    with pytest.raises(IntegrityError), transaction.atomic():
        Endpoint.objects.filter(pk=EndpointFactory().pk).update(upstream_path="echo")


def test_archived_endpoints_are_kept_and_every_upstream_has_a_secret():
    endpoint = EndpointFactory()
    endpoint.archive()
    endpoint.save()
    assert Endpoint.objects.live().count() == 0
    assert Endpoint.objects.count() == 1
    assert len(endpoint.upstream.signing_secret) == 64
    assert UpstreamFactory().signing_secret != endpoint.upstream.signing_secret

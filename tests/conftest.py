"""Fixtures every test module may use: the base users, the embedded defaults, the services."""

import pytest
from django.core.cache import cache

from portal import celery_app
from tests.factories import AccountFactory, UserFactory

pytest_plugins = ["tests.browser", "devtools.stripe_emulator.pytest_plugin"]


@pytest.fixture(autouse=True)
def _fresh_cache_and_eager_tasks(request, settings):
    """Each test starts with an empty cache and (unless it drives a real worker) eager tasks."""
    cache.clear()
    eager = request.node.get_closest_marker("celery_worker") is None
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = eager
    settings.CELERY_TASK_ALWAYS_EAGER = eager
    yield
    celery_app.conf.task_always_eager = previous
    cache.clear()


@pytest.fixture
def owner(db):
    """A developer with a verified email and an account on the default tier."""
    return AccountFactory().owner


@pytest.fixture
def account(owner):
    return owner.account


@pytest.fixture
def outsider(db):
    """Another developer, who must never see the owner's data."""
    return AccountFactory().owner


@pytest.fixture
def unverified_user(db):
    return UserFactory(verified=False)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def outsider_client(client, outsider):
    client.force_login(outsider)
    return client

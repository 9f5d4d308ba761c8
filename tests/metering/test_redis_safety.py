"""The metering Redis's configuration, judged: a server that would lose billing data on a restart
(no AOF, RDB only, fsync left to the OS), evict it (any maxmemory-policy but noeviction) or
leave accounts unserved (cluster slots uncovered) is named in /healthz, in
``manage.py check --deploy`` and on the admin index; a server that refuses CONFIG (managed
Redis) is "unknown", never an error.

Each case runs a redis-server of its own with that configuration (tests/metering/redis_process.py):
the machine's Redis is shared and its configuration is not ours to change.
What each setting risks: https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/
and https://redis.io/docs/latest/develop/reference/eviction/.
"""

import itertools
import time
from contextlib import ExitStack

import pytest
import redis
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from redis.cluster import RedisCluster

from metering.limiter import set_limiter
from metering.redis_safety import redis_safety_inspect
from tests.metering.redis_process import RedisProcess, free_port, limiter_on, redis_process

pytestmark = pytest.mark.redis

AOF_EVERYSEC = ("--appendonly", "yes", "--appendfsync", "everysec")
CONFIG_REFUSED = ("--rename-command", "CONFIG", "")  # as managed services do

# options of the server -> its status and the codes found
CASES = {
    "no persistence": ((), "unsafe", ["no-persistence"]),
    "RDB only": (("--save", "3600 1"), "unsafe", ["rdb-only"]),
    "AOF, fsync left to the OS": (
        ("--appendonly", "yes", "--appendfsync", "no"),
        "unsafe",
        ["aof-fsync-no"],
    ),
    "AOF, fsync every second": (AOF_EVERYSEC, "ok", []),
    "AOF, fsync on every write": (("--appendonly", "yes", "--appendfsync", "always"), "ok", []),
    "AOF and RDB": ((*AOF_EVERYSEC, "--save", "3600 1"), "ok", []),
    "AOF, evicting any key": (
        (*AOF_EVERYSEC, "--maxmemory-policy", "allkeys-lru"),
        "unsafe",
        ["eviction-policy"],
    ),
    "AOF, evicting keys with a TTL (the quota counters)": (
        (*AOF_EVERYSEC, "--maxmemory-policy", "volatile-lru"),
        "unsafe",
        ["eviction-policy"],
    ),
    "CONFIG refused, AOF on": ((*AOF_EVERYSEC, *CONFIG_REFUSED), "unknown", ["aof-fsync-unknown"]),
    "CONFIG refused, AOF off": (CONFIG_REFUSED, "unsafe", ["no-aof"]),
    "CONFIG refused, evicting": (
        (*AOF_EVERYSEC, *CONFIG_REFUSED, "--maxmemory-policy", "allkeys-lru"),
        "unsafe",
        ["aof-fsync-unknown", "eviction-policy"],
    ),
}


@pytest.fixture
def servers(tmp_path):
    """Start redis-servers of this test's own: ``servers(*options)``."""
    numbers = itertools.count()
    with ExitStack() as stack:

        def start(*options: str) -> RedisProcess:
            folder = tmp_path / f"redis-{next(numbers)}"
            folder.mkdir()
            return stack.enter_context(redis_process(folder, *options))

        yield start


@pytest.fixture
def metering_redis(settings, servers):
    """Point the limiter at a server of this test's own: ``metering_redis(*options)``."""

    def use(*options: str) -> RedisProcess:
        server = servers(*options)
        limiter_on(settings, server)
        return server

    return use


def _nothing_listens() -> str:
    """A Redis URL on a port that was free a moment ago."""
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.mark.parametrize(("options", "status", "codes"), CASES.values(), ids=CASES.keys())
def test_each_configuration_is_judged(servers, options, status, codes):
    server = servers(*options)
    client = server.client()

    safety = redis_safety_inspect(client)

    assert (safety.status, safety.codes) == (status, codes)
    assert {finding.node for finding in safety.findings} <= {f"127.0.0.1:{server.port}"}
    client.close()


def test_a_redis_that_does_not_answer_is_an_error_not_an_exception():
    client = redis.Redis.from_url(_nothing_listens(), socket_connect_timeout=1)

    safety = redis_safety_inspect(client)

    assert safety.status == "error"
    assert safety.error is not None and safety.error.startswith("ConnectionError")


def _cluster_options() -> tuple[str, ...]:
    # The bus port is the data port + 10000 unless named; a free data port may be too high.
    return ("--cluster-enabled", "yes", "--cluster-port", str(free_port()))


def _cluster(server: RedisProcess, last_slot: int) -> RedisCluster:
    """Make ``server`` a one-node cluster serving slots 0..last_slot; a client of it."""
    plain = server.client()
    plain.execute_command("CLUSTER ADDSLOTSRANGE", 0, last_slot)
    expected = "ok" if last_slot == 16383 else "fail"
    deadline = time.monotonic() + 10
    while plain.cluster("INFO")["cluster_state"] != expected:
        assert time.monotonic() < deadline, "the cluster did not settle"
        time.sleep(0.05)
    plain.close()
    # redis-py refuses a cluster with uncovered slots unless told otherwise.
    return RedisCluster(
        host="127.0.0.1", port=server.port, require_full_coverage=False, decode_responses=True
    )


def test_a_cluster_slot_no_primary_serves_is_found_on_every_primary(servers):
    server = servers(*AOF_EVERYSEC, *_cluster_options())
    cluster = _cluster(server, last_slot=8191)

    safety = redis_safety_inspect(cluster)

    assert (safety.status, safety.codes) == ("unsafe", ["slots-uncovered"])
    assert "8192 of 16384 slots" in safety.findings[0].detail
    assert [finding.node for finding in safety.findings] == [
        node.name for node in cluster.get_primaries()
    ]
    cluster.close()


def test_a_cluster_with_every_slot_served_and_an_aof_is_ok(servers):
    server = servers(*AOF_EVERYSEC, *_cluster_options())
    cluster = _cluster(server, last_slot=16383)

    assert redis_safety_inspect(cluster).status == "ok"
    cluster.close()


@pytest.mark.django_db
def test_healthz_names_the_risks_and_stays_200(client, metering_redis):
    metering_redis("--maxmemory-policy", "allkeys-lru")

    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["metering_redis"] == "unsafe"
    assert body["findings"] == {"metering_redis": ["eviction-policy", "no-persistence"]}


@pytest.mark.django_db
def test_healthz_says_ok_for_an_aof_without_eviction(client, metering_redis):
    metering_redis(*AOF_EVERYSEC)

    body = client.get("/healthz").json()

    assert body["checks"]["metering_redis"] == "ok"
    assert "findings" not in body


@pytest.mark.django_db
def test_healthz_says_unknown_when_config_is_refused(client, metering_redis):
    metering_redis(*AOF_EVERYSEC, *CONFIG_REFUSED)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["checks"]["metering_redis"] == "unknown"
    assert response.json()["findings"] == {"metering_redis": ["aof-fsync-unknown"]}


@pytest.mark.django_db
def test_healthz_is_503_when_the_metering_redis_is_down(client, settings):
    settings.METERING_REDIS_URL = _nothing_listens()
    set_limiter(None)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"]["metering_redis"] == "error: ConnectionError"


def _deploy_check(*options: str) -> None:
    call_command("check", "--deploy", "--tag", "metering_redis", *options)


@pytest.mark.django_db
def test_check_deploy_warns_about_each_risk(metering_redis):
    metering_redis("--maxmemory-policy", "volatile-lru")

    with pytest.raises(SystemCheckError) as failed:
        _deploy_check("--fail-level", "WARNING")

    message = str(failed.value)
    assert "(metering.W002)" in message and "neither AOF nor RDB" in message
    assert "(metering.W004)" in message and "'volatile-lru'" in message
    assert "appendonly yes" in message  # the hint says what to set


@pytest.mark.django_db
def test_check_deploy_passes_an_aof_without_eviction(metering_redis, capsys):
    metering_redis(*AOF_EVERYSEC)

    _deploy_check("--fail-level", "WARNING")

    assert "no issues" in capsys.readouterr().out


@pytest.mark.django_db
def test_check_deploy_warns_when_the_metering_redis_is_down(settings, capsys):
    settings.METERING_REDIS_URL = _nothing_listens()
    set_limiter(None)

    _deploy_check()  # a warning, not a crash

    assert "(metering.W001) The metering Redis did not answer" in capsys.readouterr().err


@pytest.mark.django_db
def test_ordinary_checks_never_ask_redis(settings):
    """``migrate`` and every other command run the ordinary checks; none of them waits for the
    metering Redis (nothing listens here, and no warning says so)."""
    settings.METERING_REDIS_URL = _nothing_listens()
    set_limiter(None)

    messages = run_checks(tags=["metering_redis"], databases=["default"])

    assert [m.id for m in messages if m.id and m.id.startswith("metering.W")] == []


@pytest.mark.django_db
def test_check_deploy_says_nothing_in_the_embedded_mode(settings, capsys):
    settings.METERING_REDIS_URL = ""
    set_limiter(None)

    _deploy_check("--fail-level", "WARNING")

    assert "no issues" in capsys.readouterr().out


@pytest.mark.django_db
def test_the_admin_index_warns_staff(admin_client, metering_redis):
    metering_redis("--save", "3600 1")

    page = admin_client.get("/admin/").content.decode()

    assert 'id="metering-redis-safety"' in page
    assert "RDB snapshots only" in page and "appendonly yes" in page


@pytest.mark.django_db
def test_the_admin_index_is_quiet_when_redis_is_safe(admin_client, metering_redis):
    metering_redis(*AOF_EVERYSEC)

    response = admin_client.get("/admin/")

    assert response.status_code == 200
    assert b"metering-redis-safety" not in response.content

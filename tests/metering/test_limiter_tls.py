"""The limiter over TLS: ``rediss://``, ``rediss-cluster://`` and ``rediss-sentinel://`` against
real redis-server processes that speak only TLS and ask every client for a certificate (Redis's
default, ``tls-auth-clients yes``: https://redis.io/docs/latest/operate/oss_and_stack/management/security/encryption/).

The certificates are made here: a CA of the test's own, a server certificate for 127.0.0.1 and a
client certificate, both signed by it. The URL's TLS options (redis-py's names: ``ssl_ca_certs``,
``ssl_certfile``, ``ssl_keyfile``) are what makes the limiter trust that CA and present the
client certificate, in all three topologies alike.
"""

import datetime
import ipaddress
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ImproperlyConfigured
from redis.cluster import RedisCluster

from metering.limiter.base import LimiterUnavailable, Outcome, Policy
from metering.limiter.redis import RedisLimiter
from metering.limiter.topology import Topology, redis_target
from metering.redis_safety import redis_safety_inspect
from tests.loops import run_on_own_loop
from tests.metering.limiters import admitted_at_once
from tests.metering.redis_process import free_port
from tests.services import not_configured, redis_server_binary

CLIENTS = 16
ALLOWED = 60


# --- Certificates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def query(self, *, client: bool = True) -> str:
        """The URL options that trust the test CA (and present the client certificate)."""
        query = f"ssl_ca_certs={self.ca}"
        if client:
            query += f"&ssl_certfile={self.client_cert}&ssl_keyfile={self.client_key}"
        return query

    def server_options(self) -> list[str]:
        return [
            "--tls-cert-file", str(self.server_cert),
            "--tls-key-file", str(self.server_key),
            "--tls-ca-cert-file", str(self.ca),
        ]  # fmt: skip

    def client_options(self) -> dict:
        """redis-py's keyword arguments for a client of the test's own."""
        return {
            "ssl": True,
            "ssl_ca_certs": str(self.ca),
            "ssl_certfile": str(self.client_cert),
            "ssl_keyfile": str(self.client_key),
        }


def _write(folder: Path, name: str, key, certificate: x509.Certificate) -> tuple[Path, Path]:
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _signed(subject: str, key, issuer: x509.Name, issuer_key, *, ca: bool = False, ip=None):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Certificates:
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Meterdesk test CA")])
    ca_cert = _signed("Meterdesk test CA", ca_key, ca_name, ca_key, ca=True)
    ca_path, _ = _write(folder, "ca", ca_key, ca_cert)
    # The server certificate also serves as the nodes' client certificate on the cluster bus
    # and for replication, so it carries no extended key usage that would forbid that.
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _write(
        folder, "server", server_key, _signed("redis", server_key, ca_name, ca_key, ip="127.0.0.1")
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _write(folder, "client", client_key, _signed("meterdesk", client_key, ca_name, ca_key))
    return Certificates(ca_path, *server, *client)


# --- TLS-only redis-server processes ------------------------------------------------------------


class TlsServers:
    """redis-server processes listening only on TLS ports, stopped together."""

    def __init__(self, folder: Path, certificates: Certificates):
        self.folder = folder
        self.certificates = certificates
        self.processes: list[subprocess.Popen] = []

    def start(self, *options: str, sentinel_lines: tuple[str, ...] = ()) -> int:
        """Start a server (a sentinel when given ``sentinel_lines`` for its config file) and
        wait until it answers over TLS; its port."""
        port = free_port()
        while port > 55535:  # a cluster node's bus listens 10,000 ports higher
            port = free_port()
        folder = self.folder / str(port)
        folder.mkdir()
        common = [
            "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
            "--save", "", "--appendonly", "no", *self.certificates.server_options(),
        ]  # fmt: skip
        if sentinel_lines:
            # A sentinel rewrites its config file: it must have one of its own.
            config = folder / "sentinel.conf"
            config.write_text("".join(f"{line}\n" for line in sentinel_lines))
            argv = [redis_server_binary(), str(config), "--sentinel", *common, *options]
        else:
            argv = [redis_server_binary(), *common, *options]
        log = (folder / "redis.log").open("ab")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)

        def answers() -> bool:
            assert process.poll() is None, (folder / "redis.log").read_text()
            return self.client(port).ping()

        self.wait_until(answers, what=f"TLS redis on {port}")
        return port

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=port,
            decode_responses=True,
            socket_timeout=2,
            **self.certificates.client_options(),
        )

    def wait_until(self, condition, *, what: str, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if condition():
                    return
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text() for p in self.folder.glob("*/redis.log"))
                raise AssertionError(f"waited {seconds:.0f} s for {what}\n{logs}")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=10)


@pytest.fixture
def servers(tmp_path, certificates) -> Iterator[TlsServers]:
    servers = TlsServers(tmp_path, certificates)
    yield servers
    servers.stop()


@pytest.fixture
def limiters() -> Iterator[list[RedisLimiter]]:
    made: list[RedisLimiter] = []
    yield made
    for limiter in made:
        limiter.close()


def _limiter(limiters: list[RedisLimiter], url: str) -> RedisLimiter:
    limiter = RedisLimiter(url, timeout_ms=2000, prefix=f"mdtls-{uuid.uuid4().hex[:8]}")
    limiters.append(limiter)
    return limiter


def _policy() -> Policy:
    """A quota of ALLOWED in a period running now (the calls take the servers' clock)."""
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    return Policy(
        rate_per_minute=1_000_000,
        burst=1_000_000,
        quota=ALLOWED,
        overage_policy="block",
        overage_cap=None,
        period_start=start,
        period_end=start + datetime.timedelta(days=30),
    )


def _exactly_allowed(limiter: RedisLimiter, account_ids: list[int]) -> None:
    """16 clients over the accounts, three times what each may spend: each is admitted exactly
    its quota, and counts exactly that (sync path); then one call more each on the asyncio
    path, refused by quota."""
    policy = _policy()
    calls = 3 * ALLOWED * len(account_ids) // CLIENTS + 1
    admitted = admitted_at_once(limiter, policy, account_ids, clients=CLIENTS, calls=calls)

    assert admitted == dict.fromkeys(account_ids, ALLOWED)
    for account in account_ids:
        assert limiter.quota_used(account, policy) == ALLOWED
        usage = [count for counts in limiter.live_usage(account).values() for count in counts]
        assert sum(count.units for count in usage) == ALLOWED

    async def one_more_each() -> list[Outcome]:
        try:
            outcomes = []
            for account in account_ids:
                decision = await limiter.hit_async(
                    account_id=account, key_id=1, endpoint="lookup", cost=1, policy=policy, seed=0
                )
                outcomes.append(decision.outcome)
            return outcomes
        finally:
            await limiter.close_async()

    assert run_on_own_loop(one_more_each()) == [Outcome.QUOTA_EXCEEDED] * len(account_ids)


# --- The URL's TLS options ----------------------------------------------------------------------


def test_the_tls_options_reach_the_cluster_and_sentinel_clients(certificates):
    query = certificates.query() + "&ssl_cert_reqs=required&ssl_check_hostname=false"

    cluster = redis_target(f"rediss-cluster://127.0.0.1:7000?{query}")
    sentinel = redis_target(f"rediss-sentinel://127.0.0.1:26379/mdk?db=2&{query}")

    expected = {
        "ssl_ca_certs": str(certificates.ca),
        "ssl_certfile": str(certificates.client_cert),
        "ssl_keyfile": str(certificates.client_key),
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": False,
    }
    assert cluster.tls_kwargs == expected and cluster.ssl
    assert (sentinel.topology, sentinel.db, sentinel.tls_kwargs) == (
        Topology.SENTINEL,
        2,
        expected,
    )


@pytest.mark.parametrize(
    "url, says",
    [
        ("redis-cluster://h:7000?ssl_ca_certs={ca}", "need TLS: use rediss://"),
        ("redis://h:6379/0?ssl_ca_certs={ca}", "need TLS"),
        ("rediss-cluster://h:7000?ssl_ca_certs=/nowhere/ca.pem", "ssl_ca_certs: no file at"),
        ("rediss://h:6379/0?ssl_keyfile=/nowhere/k.pem", "ssl_keyfile: no file at"),
        ("rediss-cluster://h:7000?ssl_cert_reqs=maybe", "ssl_cert_reqs must be one of"),
        ("rediss-sentinel://h:1/mdk?ssl_check_hostname=perhaps", "is not true or false"),
        ("rediss-cluster://h:7000?ssl_keyfile={ca}", "add ssl_certfile"),
        ("rediss-cluster://h:7000?ssl_ca_certs={ca}&ssl_ca_certs={ca}", "given 2 times"),
    ],
)
def test_a_tls_option_that_cannot_work_is_refused_before_any_request(certificates, url, says):
    with pytest.raises(ImproperlyConfigured) as refused:
        redis_target(url.format(ca=certificates.ca))

    assert says in str(refused.value)


# --- On TLS-only servers ------------------------------------------------------------------------


def test_one_tls_server_counts_exactly_what_it_admits(servers, certificates, limiters):
    port = servers.start()
    limiter = _limiter(limiters, f"rediss://127.0.0.1:{port}/0?{certificates.query()}")

    _exactly_allowed(limiter, [1, 2])

    # The safety check reads the server's configuration over the same connection.
    safety = redis_safety_inspect(limiter.client)
    assert safety.error is None
    assert safety.codes  # this test server keeps nothing on disk: reported, not hidden


def test_a_client_without_its_certificate_is_refused_by_the_server(servers, certificates, limiters):
    port = servers.start()
    limiter = _limiter(limiters, f"rediss://127.0.0.1:{port}/0?{certificates.query(client=False)}")

    with pytest.raises(LimiterUnavailable):
        limiter.hit(account_id=1, key_id=1, endpoint="lookup", cost=1, policy=_policy(), seed=0)

    assert servers.client(port).dbsize() == 0  # nothing was counted


def test_a_tls_cluster_counts_exactly_on_every_primary(servers, certificates, limiters):
    if shutil.which("redis-cli") is None:
        not_configured("redis", "redis-cli is not installed (apt-get install redis-tools)")
    cluster = ("--cluster-enabled", "yes", "--tls-cluster", "yes", "--cluster-node-timeout", "2000")
    ports = [servers.start(*cluster) for _ in range(3)]
    created = subprocess.run(
        [
            "redis-cli", "--tls", "--cacert", str(certificates.ca),
            "--cert", str(certificates.client_cert), "--key", str(certificates.client_key),
            "--cluster", "create", *(f"127.0.0.1:{port}" for port in ports),
            "--cluster-replicas", "0", "--cluster-yes",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    servers.wait_until(
        lambda: all(
            servers.client(port).cluster("info")["cluster_state"] == "ok" for port in ports
        ),
        what="the TLS cluster to cover every slot",
    )
    limiter = _limiter(limiters, f"rediss-cluster://127.0.0.1:{ports[0]}?{certificates.query()}")
    # An account on each primary: the client learned all three, over TLS, from one.
    by_primary: dict[int, int] = {}
    account = 0
    while len(by_primary) < len(ports):
        account += 1
        client = limiter.client
        assert isinstance(client, RedisCluster)
        owner = client.get_node_from_key(limiter._key(account, "rate"))
        by_primary.setdefault(owner.port, account)

    _exactly_allowed(limiter, sorted(by_primary.values()))


def test_a_tls_sentinel_names_the_primary_the_limiter_counts_on(servers, certificates, limiters):
    primary = servers.start("--tls-replication", "yes")
    sentinel = servers.start(
        "--tls-replication", "yes",
        sentinel_lines=(f"sentinel monitor mdk 127.0.0.1 {primary} 1",),
    )  # fmt: skip
    servers.wait_until(
        lambda: servers.client(sentinel).sentinel_master("mdk")["is_master"],
        what="the sentinel to see the primary",
    )
    limiter = _limiter(
        limiters, f"rediss-sentinel://127.0.0.1:{sentinel}/mdk?{certificates.query()}"
    )

    _exactly_allowed(limiter, [1, 2])

    assert servers.client(primary).dbsize() > 0  # the counters are on the sentinel's primary

"""The Kafka door of issue 14, on the real broker: who may read and write what.

The broker authenticates with SASL/SCRAM-SHA-512 and denies what no ACL allows
(ops/kafka.sh). Each test grants the platform's service principals (created by
ops/kafka.sh with their passwords in .run/kafka/credentials) their rights on the
test's own topic prefix, by the same table ops grants for the dev topics
(consumers.broker_access), and takes them away at the end.
"""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic, ScramMechanism, UserScramCredentialDeletion
from kafka.errors import AuthorizationError, KafkaError, KafkaTimeoutError

from consumers import broker_access
from consumers.auditor import Auditor
from consumers.broker_revocations import follow, regulator_principal
from consumers.checkpointer import load_or_create_log_key
from consumers.topics import ensure_topics
from ledger import gs1
from ledger.config import Settings
from ledger.keys import KeyPair
from ledger.transparency.checkpoints import parse_checkpoint
from projections.verification import read_view
from tests.alerts_world import detect_all
from tests.conftest import wait_for
from tests.helpers import Cast, append_accepted, scanned_payload
from tests.pipeline import founded_ledger, project_all, relay_all, topic_records

VALUE = b"a record on the topic: "
# Refusals show as a bootstrap that never completes; a short wait keeps the tests quick.
QUICK = {"bootstrap_timeout_ms": 5000, "request_timeout_ms": 5000}

# What each role must be able to read and write (the rest it must be refused).
READS = {
    "relay": {"label", "actor"},
    "projector": {"label", "actor"},
    "detector": {"label", "actor"},
    "auditor": {"label", "actor", "checkpoint"},
    "public": {"checkpoint"},
}
WRITES = {"relay": {"label", "actor", "checkpoint"}}


def topic(settings, kind: str) -> str:
    return {"label": settings.label_topic, "actor": settings.actor_topic, "checkpoint": settings.checkpoint_topic}[kind]


def as_(settings, principal: str, **changes):
    return settings.with_(kafka_user=principal, **changes)


@pytest.fixture
def granted(settings):
    """Every role's principal granted its rights on the test's topic prefix; taken back at the end."""
    granted = [acl for role in broker_access.ROLES for acl in broker_access.grant(settings, role)]
    yield settings
    with broker_access.admin_client(settings) as admin:
        admin.delete_acls(granted)


@pytest.fixture
def world(granted):
    """Topics of a fresh prefix, one record on each (as admin), every role granted its rights there."""
    settings = granted
    partitions = ensure_topics(settings)
    producer = KafkaProducer(**settings.kafka_client_config(), acks="all")
    try:
        for kind in ("label", "actor", "checkpoint"):
            producer.send(topic(settings, kind), key=b"k", value=VALUE + kind.encode(), partition=0).get(timeout=30)
    finally:
        producer.close()
    return settings, partitions


def read_values(settings, name: str, partitions: int) -> list[bytes] | KafkaError:
    """Every value on topic ``name`` as ``settings``' principal, or the error the broker answered.

    The partitions are counted, not asked for: a principal without rights on a
    topic is told it has none."""
    try:
        return [r.value for r in topic_records(settings, name, partitions, **QUICK)]
    except KafkaError as exc:
        return exc


def write(settings, name: str) -> KafkaError | None:
    """Produce one record to ``name`` as ``settings``' principal.

    Not idempotent, so a refusal names the topic (an idempotent producer is
    refused earlier, when it asks for a producer id; the relay's is tested end to end)."""
    try:
        producer = KafkaProducer(**settings.kafka_client_config(), **QUICK, acks="all", enable_idempotence=False, max_block_ms=5000)
    except KafkaTimeoutError as exc:
        return exc
    try:
        producer.send(name, key=b"k", value=b"written", partition=0).get(timeout=10)
        return None
    except KafkaError as exc:
        return exc
    finally:
        producer.close(timeout=5)


def refused_at_login(settings) -> bool:
    """Whether a client with ``settings``' credentials cannot even get the broker's metadata."""
    try:
        KafkaConsumer(**settings.kafka_client_config(), **QUICK).close()
    except KafkaTimeoutError:
        return True
    return False


def controller_address(settings) -> str:
    # ops/kafka.sh puts the controller on the next port (KAFKA_CONTROLLER_PORT, 9093 by default).
    host, port = settings.kafka_bootstrap.rsplit(":", 1)
    return f"{host}:{int(port) + 1}"


def test_settings_log_in_with_the_password_file_and_pass_the_login_on(tmp_path):
    (tmp_path / "relay").write_text("s3cret\n")
    s = Settings(kafka_user="relay", kafka_credentials=tmp_path)
    assert s.kafka_client_config() == {"bootstrap_servers": s.kafka_bootstrap, "security_protocol": "SASL_PLAINTEXT",
                                       "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "relay", "sasl_plain_password": "s3cret"}
    assert "TRACELEDGER_KAFKA_PASSWORD" not in s.to_env()  # a subprocess reads the same file
    assert Settings.from_env(s.to_env()).kafka_client_config() == s.kafka_client_config()
    assert Settings.from_env({"TRACELEDGER_KAFKA_USER": "x", "TRACELEDGER_KAFKA_PASSWORD": "p"}).kafka_client_config()["sasl_plain_password"] == "p"
    assert Settings().kafka_user == "admin"
    with pytest.raises(SystemExit, match="no password for Kafka user 'nobody'"):
        Settings(kafka_user="nobody", kafka_credentials=tmp_path).kafka_client_config()


def test_an_anonymous_client_gets_no_event_body_from_any_topic(world):
    settings, partitions = world
    anonymous = as_(settings, "")
    assert anonymous.kafka_client_config() == {"bootstrap_servers": settings.kafka_bootstrap}
    for name, n in partitions.items():
        result = read_values(anonymous, name, n)
        assert isinstance(result, KafkaError), f"anonymous read {name}: {result!r}"
    # Neither on the controller's port, nor with a made-up password for a real principal.
    assert refused_at_login(as_(settings, "", kafka_bootstrap=controller_address(settings)))
    assert refused_at_login(as_(settings, "auditor", kafka_password="guessed"))
    assert refused_at_login(as_(settings, "nobody", kafka_password="guessed"))
    assert not refused_at_login(as_(settings, "auditor"))  # the control: the right password gets in


@pytest.mark.parametrize("role", broker_access.ROLES)
def test_each_role_reads_exactly_its_topics(world, role):
    settings, partitions = world
    for kind in ("label", "actor", "checkpoint"):
        name = topic(settings, kind)
        result = read_values(as_(settings, role), name, partitions[name])
        if kind in READS[role]:
            assert result == [VALUE + kind.encode()], f"{role} reading {kind}: {result!r}"
        else:
            assert isinstance(result, AuthorizationError), f"{role} reading {kind}: {result!r}"


@pytest.mark.parametrize("role", broker_access.ROLES)
def test_only_the_relay_writes(world, role):
    settings, _ = world
    for kind in ("label", "actor", "checkpoint"):
        error = write(as_(settings, role), topic(settings, kind))
        if kind in WRITES.get(role, ()):
            assert error is None, f"{role} writing {kind}: {error!r}"
        else:
            assert isinstance(error, AuthorizationError), f"{role} writing {kind}: {error!r}"


def join_group(settings, group: str, name: str) -> KafkaError | None:
    """Consume ``name`` in ``group`` and commit, as ``settings``' principal."""
    consumer = KafkaConsumer(name, **settings.kafka_client_config(), **QUICK, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        consumer.poll(timeout_ms=5000)
        consumer.commit()
        return None
    except KafkaError as exc:
        return exc
    finally:
        consumer.close()


def test_consumer_groups_belong_to_their_service(world):
    settings, _ = world
    prefix = settings.topic_prefix
    own = {"projector": f"{prefix}verification-x", "detector": f"{prefix}detector-x"}
    for role in ("projector", "detector"):
        assert join_group(as_(settings, role), own[role], settings.label_topic) is None
    # Nobody uses (or reads the offsets of) another service's group.
    assert isinstance(join_group(as_(settings, "projector"), own["detector"], settings.label_topic), AuthorizationError)
    assert isinstance(join_group(as_(settings, "detector"), own["projector"], settings.label_topic), AuthorizationError)
    for role in ("relay", "auditor", "public"):
        assert isinstance(join_group(as_(settings, role), own["projector"], settings.label_topic), AuthorizationError)
        with broker_access.admin_client(as_(settings, role)) as admin, pytest.raises(AuthorizationError):
            admin.list_group_offsets(own["projector"])


@pytest.mark.parametrize("role", broker_access.ROLES)
def test_no_service_administers_the_broker(world, role):
    settings, _ = world
    with KafkaAdminClient(**as_(settings, role).kafka_client_config(), **QUICK) as admin:
        with pytest.raises(AuthorizationError):
            admin.create_topics([NewTopic(f"{settings.topic_prefix}other-{role}", 1, 1)])
        with pytest.raises(AuthorizationError):
            admin.delete_topics([settings.label_topic])
        with pytest.raises(KafkaError):  # ACLs and credentials are the admin's
            broker_access.grant(as_(settings, role), role, "auditor")
        errors = admin.alter_user_scram_credentials([UserScramCredentialDeletion("admin", ScramMechanism.SCRAM_SHA_512)])
        assert errors["admin"], "a service deleted the admin's credential"


def test_a_revoked_principal_is_locked_out(world):
    settings, partitions = world
    principal, password = f"revoked-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    broker_access.add_user(settings, principal, password)
    broker_access.grant(settings, principal, "auditor")
    holder = as_(settings, principal, kafka_password=password)
    consumer = KafkaConsumer(**holder.kafka_client_config(), **QUICK, enable_auto_commit=False)
    try:
        tp = TopicPartition(settings.label_topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        assert [r.value for recs in consumer.poll(timeout_ms=5000).values() for r in recs] == [VALUE + b"label"]

        assert broker_access.revoke(settings, principal) == len(broker_access.acls(settings, principal, "auditor"))
        # The open, logged-in connection loses its rights at once...
        consumer.seek_to_beginning(tp)
        with pytest.raises(AuthorizationError):
            consumer.poll(timeout_ms=5000)
            consumer.end_offsets([tp])
    finally:
        consumer.close()
    # ...and the credential no longer logs in.
    assert refused_at_login(holder)
    assert isinstance(read_values(holder, settings.label_topic, partitions[settings.label_topic]), KafkaError)
    assert broker_access.revoke(settings, principal) == 0  # revoking twice is harmless


def test_each_service_does_its_job_as_its_own_principal(granted, tmp_path):
    """The pipeline end to end, every step logged in as its own service principal."""
    settings = granted.with_(log_key=tmp_path / "log.key", relay_batch=5, checkpoint_events=5, checkpoint_seconds=3600)
    with founded_ledger(settings, Cast()) as (_, ledger, cast):
        serials = [gs1.new_serial() for _ in range(6)]
        assert all(r.status == "accepted" for r in ledger.append([cast.issue(s) for s in serials]))
        append_accepted(ledger, [cast.event("gateway", "label", serials[0], "Scanned", scanned_payload())])
    # The relay creates its topics, produces idempotently, checkpoints, and (second run) resumes from the tails.
    assert relay_all(as_(settings, "relay")) == len(Cast.ROLES) + 7
    assert relay_all(as_(settings, "relay")) == 0
    assert project_all(as_(settings, "projector")).quarantined == 0
    with psycopg.connect(settings.pg_conninfo) as conn:
        assert read_view(conn, serials[0], "verification")["verdict"] == "genuine"
    detect_all(as_(settings, "detector"))
    # The regulator's auditor re-verifies everything from the raw stream.
    key = load_or_create_log_key(settings.log_key)
    report = Auditor(as_(settings, "auditor"), key.public_key, state_path=tmp_path / "audit.state").run()
    assert report.ok and report.new_events == len(Cast.ROLES) + 7 and report.new_checkpoints >= 2
    # The public reads the signed checkpoints, and checks them with the log's public key alone.
    public = as_(settings, "public")
    notes = read_values(public, settings.checkpoint_topic, 1)
    assert len(notes) == report.new_checkpoints
    sizes = [parse_checkpoint(note, key.public_key, origin=settings.log_origin).size for note in notes]
    assert sizes[-1] == len(Cast.ROLES) + 7
    assert isinstance(read_values(public, settings.label_topic, settings.partitions), AuthorizationError)
    assert isinstance(read_values(as_(settings, ""), settings.label_topic, settings.partitions), KafkaError)  # nor anyone


def test_a_regulator_revoked_on_the_ledger_loses_its_broker_login(granted):
    settings = granted
    regulators = [f"reg-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    logins = {}
    with founded_ledger(settings, Cast()) as (_, ledger, cast):
        for actor in regulators:
            key = KeyPair.generate(actor)
            assert ledger.append([cast.event("registrar", "actor", actor, "ActorRegistered", {
                "role": "regulator", "name": actor, "public_key": key.public_key, "gtin_prefixes": []})])[0].status == "accepted"
            principal, password = regulator_principal(actor), uuid.uuid4().hex
            broker_access.add_user(settings, principal, password)
            broker_access.grant(settings, principal, "auditor")
            logins[actor] = as_(settings, principal, kafka_password=password)
        relay_all(settings)
        n = settings.partitions
        assert all(read_values(login, settings.actor_topic, 1) for login in logins.values())

        stop = threading.Event()
        follower = threading.Thread(target=follow, args=(settings, stop), kwargs={"every_seconds": 0.5})
        follower.start()
        try:
            revoked, kept = regulators
            assert ledger.append([cast.event("registrar", "actor", revoked, "ActorRevoked", {"reason": "mandate ended"})])[0].status == "accepted"
            relay_all(settings)
            wait_for(lambda: refused_at_login(logins[revoked]), timeout=60, what="the revoked regulator's login to go")
        finally:
            stop.set()
            follower.join(30)
        assert isinstance(read_values(logins[revoked], settings.label_topic, n), KafkaError)
        assert isinstance(read_values(logins[kept], settings.label_topic, n), list)  # the other regulator still reads
        broker_access.revoke(settings, regulator_principal(kept))

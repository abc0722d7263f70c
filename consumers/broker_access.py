"""Who may do what on the Kafka broker: each principal's ACLs (issue 14, the Kafka door).

The local broker authenticates every client with SASL/SCRAM-SHA-512 and its
StandardAuthorizer refuses whatever no ACL allows (ops/kafka.sh,
ops/kafka/server.properties.in). This module is the table of rights, one role
per platform service, for the topics of one ``Settings.topic_prefix``:

==========  ====================================================================
role        may (Read and Write imply Describe)
==========  ====================================================================
relay       write label-events, actor-events, checkpoints; create them and read
            their configs (it makes them on first start); read label-events and
            actor-events (the tails, to resume after a crash); idempotent write
projector   read label-events and actor-events; its consumer groups
            ``<prefix>verification-*``
detector    read label-events and actor-events; its consumer groups
            ``<prefix>detector-*``
auditor     read all three topics: the regulator's raw event stream
public      read checkpoints only: signed tree heads, no event body (leaf hashes
            and proofs are the API's)
==========  ====================================================================

``broker`` and ``admin`` are super users (server.properties), not in the table;
an anonymous client cannot log in at all. Principals are named after their role
unless said otherwise (a second auditor for another regulator, a test's
throw-away principal). :func:`revoke` takes a principal's rights and password
away: open connections lose their rights at once, new ones cannot log in.

``python -m consumers.broker_access grant`` (run as admin by ops/kafka.sh on
each broker start) grants every role's principal its rights; ``revoke NAME``
and ``add-user NAME --role ROLE`` do the rest from a shell.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from ledger.config import Settings
from ledger.logging_setup import configure, get_logger

log = get_logger("broker_access")

READ, WRITE, CREATE, DESCRIBE_CONFIGS = ACLOperation.READ, ACLOperation.WRITE, ACLOperation.CREATE, ACLOperation.DESCRIBE_CONFIGS
ROLES = ("relay", "projector", "detector", "auditor", "public")


@dataclass(frozen=True)
class Right:
    """Operations allowed on one resource (a topic, the groups under a prefix, the cluster)."""

    resource: ResourceType
    name: str
    operations: tuple[ACLOperation, ...]
    pattern: ACLResourcePatternType = ACLResourcePatternType.LITERAL


def rights(settings: Settings, role: str) -> list[Right]:
    """What ``role`` may do on the topics of ``settings.topic_prefix`` (the module's table)."""
    events = (settings.label_topic, settings.actor_topic)
    every = events + (settings.checkpoint_topic,)

    def topics(names, *operations) -> list[Right]:
        return [Right(ResourceType.TOPIC, name, operations) for name in names]

    def groups(kind: str) -> list[Right]:
        # The group ids consumers/projector.py and consumers/detector.py build.
        return [Right(ResourceType.GROUP, f"{settings.topic_prefix}{kind}-", (READ,), ACLResourcePatternType.PREFIXED)]

    table = {
        "relay": topics(every, WRITE, CREATE, DESCRIBE_CONFIGS) + topics(events, READ)
        + [Right(ResourceType.CLUSTER, "kafka-cluster", (ACLOperation.IDEMPOTENT_WRITE,))],
        "projector": topics(events, READ) + groups("verification"),
        "detector": topics(events, READ) + groups("detector"),
        "auditor": topics(every, READ),
        "public": topics([settings.checkpoint_topic], READ),
    }
    if role not in table:
        raise ValueError(f"unknown broker role {role!r} (one of {', '.join(ROLES)})")
    return table[role]


def acls(settings: Settings, principal: str, role: str | None = None) -> list[ACL]:
    """The ACLs that give ``principal`` the rights of ``role`` (default: its namesake)."""
    return [
        ACL(f"User:{principal}", "*", operation, ACLPermissionType.ALLOW, ResourcePattern(r.resource, r.name, r.pattern))
        for r in rights(settings, role or principal)
        for operation in r.operations
    ]


def admin_client(settings: Settings) -> KafkaAdminClient:
    """An admin client as ``settings``' principal (admin, for everything here)."""
    return KafkaAdminClient(**settings.kafka_client_config(), client_id="traceledger-broker-access")


def grant(settings: Settings, principal: str, role: str | None = None) -> list[ACL]:
    """Give ``principal`` the rights of ``role``; granting twice is harmless."""
    wanted = acls(settings, principal, role)
    with admin_client(settings) as admin:
        result = admin.create_acls(wanted)
    if result["failed"]:
        raise result["failed"][0](f"the broker refused ACLs for {principal}: {result['failed']}")
    log.info("acls_granted", principal=principal, role=role or principal, prefix=settings.topic_prefix, acls=len(wanted))
    return wanted


def grant_all(settings: Settings) -> None:
    """Every role's namesake principal its rights (what ops/kafka.sh runs on start)."""
    for role in ROLES:
        grant(settings, role)


def add_user(settings: Settings, principal: str, password: str) -> None:
    """Create (or re-key) ``principal``'s SCRAM-SHA-512 credential."""
    with admin_client(settings) as admin:
        errors = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(principal, ScramMechanism.SCRAM_SHA_512, password)])
    if errors.get(principal):
        raise RuntimeError(f"the broker refused a credential for {principal}: {errors[principal]}")
    log.info("broker_user_added", principal=principal)


def revoke(settings: Settings, principal: str) -> int:
    """Take every ACL and the SCRAM credential of ``principal`` away; return the ACLs removed.

    The ACLs go first: the authorizer checks each request, so connections that
    are already logged in lose their rights at once; without the credential no
    new connection can log in."""
    every_acl = ACLFilter(f"User:{principal}", None, ACLOperation.ANY, ACLPermissionType.ANY,
                          ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
    with admin_client(settings) as admin:
        [(_, removed, error)] = admin.delete_acls([every_acl])
        if error.errno:
            raise RuntimeError(f"the broker refused to delete {principal}'s ACLs: {error}")
        errors = admin.alter_user_scram_credentials([UserScramCredentialDeletion(principal, ScramMechanism.SCRAM_SHA_512)])
    # A principal without a credential (already revoked) is not an error: the outcome is the same.
    if errors.get(principal) and "does not exist" not in errors[principal]:
        raise RuntimeError(f"the broker refused to delete {principal}'s credential: {errors[principal]}")
    log.info("broker_principal_revoked", principal=principal, acls_removed=len(removed))
    return len(removed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="traceledger broker principals and ACLs (run as admin)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    g = verbs.add_parser("grant", help="grant rights: every role's namesake principal, or --principal with --role")
    g.add_argument("--principal")
    g.add_argument("--role", choices=ROLES)
    a = verbs.add_parser("add-user", help="create a principal's SCRAM credential (password read from stdin) and grant its role")
    a.add_argument("principal")
    a.add_argument("--role", choices=ROLES, required=True)
    r = verbs.add_parser("revoke", help="remove a principal's ACLs and credential")
    r.add_argument("principal")
    args = parser.parse_args(argv)
    configure()
    settings = Settings.from_env()
    if args.verb == "grant":
        if args.principal:
            grant(settings, args.principal, args.role)
        else:
            grant_all(settings)
    elif args.verb == "add-user":
        add_user(settings, args.principal, sys.stdin.readline().strip())
        grant(settings, args.principal, args.role)
    else:
        revoke(settings, args.principal)


if __name__ == "__main__":
    main()

"""GS1 company prefixes, one actor each: overlapping prefixes are refused at registration.

Which producer may issue a GTIN is decided by its registered prefixes
(:meth:`ledger.lifecycle.ActorState.may_issue`). If one producer held ``690123``
and another ``6901234``, both could issue GTINs starting ``06901234…``: the
ledger could no longer say whose product a label is. So before an
``ActorRegistered`` event is stored, :func:`claim` reserves its prefixes in
``gtin_prefix_claims`` (ledger/migrations/0008_gtin_prefix_claims.sql), refusing
any that is a prefix of another actor's or starts with one. Claims are made one
at a time under a transaction-level advisory lock, so two registrations racing
cannot both pass the check. A claim is made *before* the event is stored and
released if the event is then not stored (:func:`release`); a crash in between
leaves a claim without an actor, which refuses too much, never too little.

Ledgers whose actors were registered before this table existed have no claims for
them: :func:`claim` only knows what was registered since.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from ledger.errors import Refused

# Any fixed number: serializes claims (registrations are rare).
_CLAIM_LOCK = 0x67746970

_OVERLAP = (
    "SELECT prefix, actor FROM gtin_prefix_claims WHERE actor <> %(actor)s "
    "AND (starts_with(prefix, %(prefix)s) OR starts_with(%(prefix)s, prefix)) ORDER BY prefix LIMIT 1"
)


def claim(conninfo: str, actor: str, prefixes: Sequence[str]) -> None:
    """Reserve ``prefixes`` for ``actor``, or refuse (``overlapping_prefix``) and reserve none."""
    if not prefixes:
        return
    with psycopg.connect(conninfo, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CLAIM_LOCK,))
        for prefix in prefixes:
            clash = conn.execute(_OVERLAP, {"actor": actor, "prefix": prefix}).fetchone()
            if clash:
                raise Refused("overlapping_prefix", f"GS1 prefix {prefix} overlaps {clash[1]}'s {clash[0]}: "
                              "a GTIN must belong to one company prefix only", field="gtin_prefixes")
        conn.cursor().executemany("INSERT INTO gtin_prefix_claims (prefix, actor) VALUES (%s, %s) ON CONFLICT (prefix) DO NOTHING",
                                  [(p, actor) for p in prefixes])


def release(conninfo: str, actor: str) -> None:
    """Drop ``actor``'s claims (its registration was not stored after all)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("DELETE FROM gtin_prefix_claims WHERE actor = %s", (actor,))

"""The transparency log: every accepted event in one append-only Merkle log (RFC 6962 / 9162).

One module per concept: ``merkle`` (hashing), ``proofs`` (inclusion and consistency),
``checkpoints`` (signed notes of the log's size and root), ``tree`` (the tree's nodes in
PostgreSQL), ``log`` (the dense global log index the relay assigns), ``bundle`` (a label's
proof bundle, verified offline), ``public_audit`` (what anyone can check from leaf
hashes alone). Test vectors: ``../shared/testvectors/rfc6962.json``.
"""

__all__ = ["bundle", "checkpoints", "log", "merkle", "proofs", "public_audit", "tree"]

"""``traceledger certificate issue|suspend|reinstate|revoke``: a certification body's signed certificates.

A certifier (an actor registered with role ``certifier`` and the schemes it certifies,
e.g. ``CCC``) signs each step of a certificate's life with its own key, client-side:
the ledger checks the signer holds the scheme and is the certificate's issuer, and a
revoked certificate stays revoked. Shoppers' pages show each certificate a label or its
lot links with its status at the time they look (``projections.certificates``); a
suspended or revoked one turns the page's 正品 into a warning.
"""

from __future__ import annotations

import click

from traceledger import commands as cmd
from traceledger.cli.base import LedgerGroup, State, common_options, finish, pass_state, signing_options


def append(state: State, key: str, as_actor: str | None, cert_id: str, kind: str, payload: dict, verb: str, new_chain_ok: bool = False) -> None:
    """Sign the next ``kind`` event of certificate ``cert_id`` on its current head, post it, report."""
    signer = cmd.Signer.load(key, as_actor)
    signer.check("certificate", kind, payload, subject=cert_id)  # a bad payload or id is refused before any I/O
    client = state.client()
    events, refused = cmd.next_events(signer, "certificate", [cert_id], kind, payload, client.heads("certificate", [cert_id]),
                                      new_chain_ok=new_chain_ok)
    report = cmd.Report()
    for item in refused + (client.post_events(events) if events else []):
        report.add(item)
    finish(state, report, f"{verb} {cert_id}", kind=kind, actor=signer.actor)


def issued_payload(scheme: str, number: str, holder: str, *, scope: str | None = None, gtins=(), gtin_prefixes=(),
                   valid_from: str | None = None, valid_until: str, issuer_name_zh: str | None = None,
                   issuer_name_en: str | None = None) -> dict:
    """CertificateIssued (event.v4): what is certified, to whom, until when, by whom (names in Chinese and English)."""
    return {"scheme": scheme, "number": number, "holder": holder, "scope": scope, "gtins": list(gtins), "gtin_prefixes": list(gtin_prefixes),
            "valid_from": valid_from, "valid_until": valid_until, "issuer_name_zh": issuer_name_zh, "issuer_name_en": issuer_name_en}


@click.group(cls=LedgerGroup)
@common_options
def certificate() -> None:
    """A certification body's certificates (CCC and others) and their status."""


@certificate.command("issue")
@signing_options
@click.option("--scheme", required=True, help="e.g. CCC (one of the certifier's schemes).")
@click.option("--number", required=True, help="The certificate number, e.g. 2024011101234567.")
@click.option("--holder", required=True, metavar="ACTOR", help="The registered actor (a producer) it is issued to.")
@click.option("--scope", required=True, help="The products or models covered (at most 500 characters).")
@click.option("--gtin", "gtins", multiple=True, help="A GTIN covered (repeatable).")
@click.option("--gtin-prefix", "gtin_prefixes", multiple=True, help="A GS1 company prefix covered (repeatable).")
@click.option("--valid-from", required=True, metavar="YYYY-MM-DD")
@click.option("--valid-until", required=True, metavar="YYYY-MM-DD")
@click.option("--issuer-name-zh", help="The certification body's name in Chinese, e.g. 中国质量认证中心.")
@click.option("--issuer-name-en", help="Its name in English.")
@common_options
@pass_state
def certificate_issue(state: State, key, as_actor, scheme, number, holder, scope, gtins, gtin_prefixes, valid_from, valid_until,
                      issuer_name_zh, issuer_name_en) -> None:
    """Issue a certificate (subject ``SCHEME/NUMBER``)."""
    payload = issued_payload(scheme, number, holder, scope=scope, gtins=gtins, gtin_prefixes=gtin_prefixes, valid_from=valid_from,
                             valid_until=valid_until, issuer_name_zh=issuer_name_zh, issuer_name_en=issuer_name_en)
    append(state, key, as_actor, f"{scheme}/{number}", "CertificateIssued", payload, "issue", new_chain_ok=True)


def _step(kind: str, verb: str, with_until: bool = False):
    """A command moving a certificate on (suspend, reinstate, revoke): the issuer's signed reason."""

    @signing_options
    @click.argument("cert_id", metavar="SCHEME/NUMBER")
    @click.option("--reason", required=True, help="Why (signed onto the certificate's chain).")
    @common_options
    @pass_state
    def command(state: State, key, as_actor, cert_id, reason, until=None) -> None:
        payload = {"reason": reason} | ({"until": until} if with_until else {})
        append(state, key, as_actor, cert_id, kind, payload, verb)

    if with_until:
        command = click.option("--until", metavar="YYYY-MM-DD", help="Suspended until (open-ended if left out).")(command)
    command.__doc__ = f"{verb.capitalize()} a certificate (its issuer only)."
    return certificate.command(verb)(command)


_step("CertificateSuspended", "suspend", with_until=True)
_step("CertificateReinstated", "reinstate")
_step("CertificateRevoked", "revoke")

COMMANDS = (certificate,)

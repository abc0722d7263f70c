"""The ``traceledger`` command line: sign events client-side and talk to the API.

:mod:`traceledger.cli.base` holds the root group and what every verb shares
(``--api``, ``--json``, key options, exit codes, output); each command group
has its own module, and this package adds them all to the root group, here and
only here:

=================  ==========================================================
``keys``           ``keygen``, ``init``
``actor``          ``actor register|rotate|revoke|show``
``issue``          ``issue``
``lifecycle``      ``ship``, ``receive``, ``scan``, ``flag``, ``recall``, ``decommission``
``verify``         ``verify`` (the public view)
``label``          ``label trail`` (producer or regulator)
``containers``     ``container create|show``, ``pack``, ``unpack``
``lot``            ``lot commission|transform|impact``
``certificates``   ``certificate issue|suspend|reinstate|revoke`` (a certification body)
``epcis``          ``epcis export|capture|jobs`` (standard capture: ``epcis_capture``)
``labels``         ``labels print``
``audit``          ``audit run|verify-bundle|checkpoint|compare|public``
``alerts``         ``alerts list|show|summary|chart|ack|resolve|report``
``demo``           ``demo``
``simulate``       ``simulate``
=================  ==========================================================

``python -m traceledger.cli`` runs :func:`main` (``__main__.py``).
"""

from __future__ import annotations

from traceledger.cli import (
    actor,
    alerts,
    audit,
    certificates,
    containers,
    demo,
    epcis,
    issue,
    keys,
    label,
    labels,
    lifecycle,
    lot,
    simulate,
    verify,
)
from traceledger.cli.base import cli, main

__all__ = ["cli", "main"]

for _group in (keys, actor, issue, lifecycle, verify, label, containers, lot, certificates, epcis, labels, audit, alerts, demo, simulate):
    for _command in _group.COMMANDS:
        cli.add_command(_command)
del _group, _command

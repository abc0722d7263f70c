"""The shopper channels of the API: where the person holding a label checks it.

* :mod:`~traceledger.api.shopper.resolver` — ``GET /``, ``GET|POST /01/{gtin}/21/{serial}``: the GS1
  Digital Link resolver, the HTML page and its forms.
* :mod:`~traceledger.api.shopper.pin` — ``POST /v1/labels/{serial}/pin``.
* :mod:`~traceledger.api.shopper.reports` — ``POST /v1/labels/{serial}/reports``.
* :mod:`~traceledger.api.shopper.sms` — ``POST /v1/channels/sms``.
* :mod:`~traceledger.api.shopper.voice` — ``POST /v1/channels/voice`` and its prompt audio.
* :mod:`~traceledger.api.shopper.service` — the steps they share (a view with the query counted
  as a scan, PIN checks); :mod:`~traceledger.api.shopper.web` — links, forms, cookies.

What they say and show is :mod:`traceledger.shopper`; what they keep is :mod:`ledger.channel_state`.
"""

from traceledger.api.shopper import pin, reports, resolver, sms, voice

ROUTERS = (resolver.router, pin.router, reports.router, sms.router, voice.router)

__all__ = ["ROUTERS"]

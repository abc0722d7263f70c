"""What a shopper (the person checking a label) sees and hears, on every channel.

Presentation only, no I/O beyond the speech synthesizer: the API's shopper
routes (:mod:`traceledger.api.shopper`) fetch the ledger's view and hand it here.

* :mod:`traceledger.shopper.wording` — the shopper's view of a label, the
  verdict to show, SMS parsing and replies, phone prompts; Chinese and English.
* :mod:`traceledger.shopper.pages` — the HTML pages (manual entry, result).
* :mod:`traceledger.shopper.voice_audio` — phone prompts as WAV audio.

(``consumers/`` is something else: the Kafka stream processes.)
"""

from traceledger.shopper import pages, voice_audio, wording

__all__ = ["pages", "voice_audio", "wording"]

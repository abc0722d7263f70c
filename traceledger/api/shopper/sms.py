"""``POST /v1/channels/sms``: the inbound SMS webhook; the answer is the reply text.

An SMS with a PIN is one scan carrying the PIN's outcome. A sender's own
repeats (the same SMS twice, a right PIN sent again) read "you checked this
before", never a warning; a PIN label queried without its PIN asks for it. The client is the
sender's number as sent by the gateway that forwards it
(:func:`traceledger.api.client_identity.sender_of`); over its limit of messages
it gets a polite "try again later" in its language, never an error.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from ledger import gs1
from ledger.client_limits import OverLimit
from ledger.errors import Refused
from ledger.logging_setup import get_logger
from traceledger.api.client_identity import sender_of
from traceledger.api.responses import OrjsonResponse
from traceledger.api.shopper import service
from traceledger.api.shopper.web import form_of
from traceledger.shopper import wording

log = get_logger("api_consumer")

router = APIRouter()


def sms_answer(reply: str, as_json: bool) -> Response:
    if as_json:
        return OrjsonResponse({"reply": reply})
    return PlainTextResponse(reply)


async def sms_reply(state, conn, serial: str, pin_text: str | None, client: str, lang: str) -> str:
    """Check the PIN first (the message's one scan carries its outcome), then count the query and word the reply."""
    pin = None
    if pin_text:
        raw, cv = await service.consumer_of(state, conn, serial, channel=None, session=None)
        if cv.get("pin_protected") and cv["verdict"] == "genuine":
            pin = await service.pin_check(conn, raw, pin_text, client, "sms", state=state, scan_channel="sms", scan_session=client)
    # The message's one scan: the PIN check's (recorded with it), else this query's.
    recorded = pin is not None and service.PIN_EVENT_RESULT.get(pin["pin_result"]) is not None
    _, cv = await service.consumer_of(state, conn, serial, channel=None if recorded else "sms", session=client, client=client)
    if cv["verdict"] == "unknown":
        return wording.sms_reply("unknown", lang, cv)
    pin, own, mine_first = await service.looker_state(conn, cv, pin, client)
    key = await service.certified(conn, cv, wording.display_key(cv, pin, own=own))
    return wording.sms_reply(key, lang, cv, pin, mine_first=mine_first)


@router.post("/v1/channels/sms", summary="Inbound SMS webhook (form fields from, text): the reply text",
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def sms(request: Request):
    """Reply ≤ 70 UCS-2 characters, verdict first; text/plain, or ``{"reply": …}`` for Accept: application/json."""
    as_json = "application/json" in request.headers.get("accept", "")
    lang = "zh"
    try:
        form = await form_of(request)
        sender = (form.get("from") or "-")[:32]
        serial, pin_text, lang = wording.parse_sms(form.get("text", ""))
        gs1.validate_serial(serial)
    except Refused as exc:
        reply = wording.sms_reply("bad_check" if exc.code == "bad_check_digit" else "bad", lang)
        log.info("sms_unreadable", code=exc.code)
        return sms_answer(reply, as_json)
    client = sender_of(request, "sms", sender)
    state = request.app.state
    async with state.pool.connection() as conn:
        try:
            await service.spend(state, conn, "sms", client)
        except OverLimit as exc:
            return sms_answer(wording.busy_text(lang, exc.retry_after, wording.SMS), as_json)
        reply = await sms_reply(state, conn, serial, pin_text, client, lang)
    return sms_answer(reply, as_json)

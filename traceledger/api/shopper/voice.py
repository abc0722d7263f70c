"""The phone line (IVR): ``POST /v1/channels/voice`` step by step, ``GET /v1/channels/voice/audio`` its prompt as WAV.

A call keys the label's 32-digit number code, then (for a genuine
PIN-protected label) the scratch-off PIN; three bad tries end it. Its step is
kept in ``ivr_calls`` (:mod:`ledger.channel_state`), so a call survives an API
restart and can hop between replicas. The prompts are
:data:`traceledger.shopper.wording.VOICE`. Each new call spends one of its
client's calls (the caller's number as sent by the telephony gateway,
:func:`traceledger.api.client_identity.sender_of`); over the limit the call is
politely ended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledger import channel_state, shortcode
from ledger.client_limits import OverLimit
from ledger.errors import Refused
from ledger.logging_setup import get_logger
from traceledger.api.client_identity import sender_of
from traceledger.api.problems import refused
from traceledger.api.responses import OrjsonResponse
from traceledger.api.shopper import service
from traceledger.api.shopper.web import form_of
from traceledger.shopper import voice_audio, wording

log = get_logger("api_consumer")

CALL_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_TRIES = 3  # bad codes or PINs before the call is ended

router = APIRouter()


def valid_call_id(call_id: str) -> str:
    if not CALL_ID.fullmatch(call_id):
        raise Refused("invalid_field", "call_id must be 1-64 letters, digits or ._:-", field="call_id")
    return call_id


@dataclass
class Call:
    """One step of a phone call: where it stands and how to answer it."""

    state: object  # the app's state
    conn: object
    call_id: str
    lang: str
    client: str
    step: str = "code"
    serial: str | None = None
    tries: int = 0

    @property
    def prompts(self) -> dict[str, str]:
        return wording.VOICE[self.lang]

    async def say(self, prompt: str, step: str, serial=None, tries=0, expect=None) -> OrjsonResponse:
        """Save the call's next step and answer its prompt (``expect`` None: hang up)."""
        await channel_state.ivr_put(self.conn, self.call_id, step, serial, tries, self.lang, prompt)
        return OrjsonResponse({"prompt": prompt, "phrases": voice_audio.phrases(prompt), "expect": expect, "hangup": expect is None,
                               "lang": self.lang,
                               "audio": f"/v1/channels/voice/audio?{urlencode({'call_id': self.call_id})}"})

    def keyed(self, digits: str) -> str:
        """The digits the caller keyed, read back (a phrase)."""
        return self.prompts["you_keyed"].format(d=wording.spoken_digits(digits[:40], self.lang)) if digits else ""

    def hotline(self, cv: dict) -> str:
        """The brand's service line (its signed profile), read digit by digit; "" when it has none."""
        digits = "".join(c for c in cv.get("hotline") or "" if c.isdigit())
        return self.prompts["hotline"].format(h=wording.spoken_digits(digits, self.lang)) if digits else ""

    def join(self, *phrases: str) -> str:
        return ("" if self.lang == "zh" else " ").join(p for p in phrases if p)

    async def retry(self, prompt_key: str, step: str, serial=None, prompt: str | None = None, keyed: str = "") -> OrjsonResponse:
        """Ask again after a bad try (reading back what was keyed), or give up after the last one."""
        if self.tries + 1 >= MAX_TRIES:
            return await self.say(self.join(self.keyed(keyed), self.prompts["give_up"]), "done")
        return await self.say(self.join(self.keyed(keyed), prompt or self.prompts[prompt_key]), step, serial, self.tries + 1, expect=step)


async def code_step(call: Call, keyed: str) -> OrjsonResponse:
    """The caller keyed a number code: look the label up (a scan on the ``voice`` channel)."""
    try:
        serial = shortcode.from_short_code(keyed)
    except Refused as exc:
        return await call.retry("bad_check" if exc.code == "bad_check_digit" else "bad_code", "code", keyed=keyed)
    _, cv = await service.consumer_of(call.state, call.conn, serial, channel="voice", session=call.client, client=call.client)
    if cv.get("pin_protected") and cv["verdict"] == "genuine":
        return await call.say(call.join(call.keyed(keyed), call.prompts["pin"]), "pin", serial, 0, expect="pin")
    _, own, mine_first = await service.looker_state(call.conn, cv, None, call.client)  # the caller's own repeats: no warning
    key = await service.certified(call.conn, cv, wording.display_key(cv, own=own))
    verdict = wording.voice_verdict(key, call.lang, cv, mine_first=mine_first)
    return await call.say(call.join(call.keyed(keyed), verdict, call.hotline(cv), call.prompts["bye"]), "done")


async def pin_step(call: Call, keyed: str) -> OrjsonResponse:
    """The caller keyed the PIN of the label found at the code step."""
    raw, cv = await service.consumer_of(call.state, call.conn, call.serial, channel=None, session=None)
    try:
        pin = await service.pin_check(call.conn, raw, keyed, call.client, "voice", state=call.state, scan_channel="voice",
                                      scan_session=call.client)
    except Refused:
        return await call.retry("bad_pin", "pin", call.serial, keyed=keyed)
    if pin["pin_result"] == "wrong" and pin["attempts_left"] > 0 and call.tries + 1 < MAX_TRIES:
        again = call.join(wording.voice_verdict("pin_wrong", call.lang, cv, pin), call.prompts["again"])
        return await call.retry("again", "pin", call.serial, prompt=again, keyed=keyed)
    pin, _, _ = await service.looker_state(call.conn, cv, pin, call.client)  # the caller's own PIN again: no warning
    verdict = wording.voice_verdict(await service.certified(call.conn, cv, wording.display_key(cv, pin)), call.lang, cv, pin)
    return await call.say(call.join(call.keyed(keyed), verdict, call.hotline(cv), call.prompts["bye"]), "done")


async def next_prompt(call: Call, new_call: bool, keyed: str) -> OrjsonResponse:
    if new_call:
        try:
            await service.spend(call.state, call.conn, "call", call.client)
        except OverLimit:
            return await call.say(call.prompts["busy"], "done")
    if new_call and not keyed:
        return await call.say(call.prompts["welcome"], "code", expect="code")
    if call.step == "done":
        return await call.say(call.prompts["bye"], "done")
    if keyed in ("", "*"):  # nothing keyed, or * to hear the prompt again
        prompt = call.prompts["welcome"] if call.step == "code" else call.prompts["pin"]
        return await call.say(prompt, call.step, call.serial, call.tries, expect=call.step)
    if call.step == "code":
        return await code_step(call, keyed)
    return await pin_step(call, keyed)


@router.post("/v1/channels/voice", summary="Phone line (IVR): DTMF digits step by step; answers the next prompt")
async def voice(request: Request):
    """Form fields ``call_id``, ``digits`` (what was keyed since the last prompt), ``from``, ``lang``.

    Answers ``{"prompt", "expect": "code"|"pin"|null, "hangup", "lang", "audio"}``; ``audio`` is
    the URL of the prompt as a WAV file, for platforms that play audio.
    """
    form = await form_of(request)
    call_id = valid_call_id(form.get("call_id", ""))
    keyed = shortcode.clean_digits(form.get("digits", "")).rstrip("#")
    state = request.app.state
    async with state.pool.connection() as conn:
        saved = await channel_state.ivr_get(conn, call_id)
        lang = (saved or {}).get("lang") or wording.pick_lang(form.get("lang"), None)
        client = sender_of(request, "tel", (form.get("from") or call_id)[:32])
        call = Call(state, conn, call_id, lang, client, **{k: saved[k] for k in ("step", "serial", "tries")} if saved else {})
        return await next_prompt(call, saved is None, keyed)


@router.get("/v1/channels/voice/audio", summary="The phone call's current prompt as WAV audio (espeak-ng)",
            response_class=Response, responses={200: {"content": {"audio/wav": {}}}})
async def voice_prompt_audio(request: Request, call_id: str = ""):
    """The prompt the call was last given, spoken (Mandarin or English, as the call goes); 404 for no such call."""
    valid_call_id(call_id)
    async with request.app.state.pool.connection() as conn:
        current = await channel_state.ivr_prompt(conn, call_id)
    if current is None:
        return refused(404, Refused("unknown_call", f"no call {call_id} has been given a prompt", field="call_id"))
    try:
        wav = await voice_audio.synthesize(*current)
    except voice_audio.SpeechUnavailable as exc:
        log.error("voice_audio_unavailable", call_id=call_id, error=str(exc))
        return refused(503, Refused("unavailable", str(exc)))
    return Response(wav, media_type="audio/wav", headers={"Cache-Control": "no-store"})

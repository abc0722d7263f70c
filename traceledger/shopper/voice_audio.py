"""The phone line's prompts as audio: WAV synthesized by espeak-ng.

A telephony platform that plays audio files instead of speaking text itself
fetches ``GET /v1/channels/voice/audio?call_id=…`` after each step of the
IVR flow and plays the call's current prompt. Only the prompts the flow
itself wrote can be synthesized (there is no free-text parameter), so
nobody can make the server speak arbitrary text, and a semaphore bounds how
many synthesizers run at once (each is a short-lived process of ~20-50 ms
of CPU).

espeak-ng comes from Debian (``ops/browser.sh`` installs it); without it the
route answers 503 with a clear reason.
"""

from __future__ import annotations

import asyncio
import shutil

from ledger.errors import Refused

VOICES = {"zh": "cmn", "en": "en"}  # espeak-ng voices: Mandarin, English
MAX_PROMPT_CHARS = 400
SYNTH_TIMEOUT_SECONDS = 10.0
_running = asyncio.Semaphore(2)


class SpeechUnavailable(Exception):
    """espeak-ng is not installed or failed: the audio cannot be made."""


def available() -> bool:
    """Whether espeak-ng is on the PATH."""
    return shutil.which("espeak-ng") is not None


async def synthesize(text: str, lang: str) -> bytes:
    """A WAV file (16-bit mono PCM) of ``text`` spoken in ``lang`` (``zh`` or ``en``)."""
    if lang not in VOICES:
        raise Refused("invalid_field", f"lang must be one of {', '.join(VOICES)}", field="lang")
    if not text or len(text) > MAX_PROMPT_CHARS:
        raise Refused("invalid_field", f"a prompt is 1-{MAX_PROMPT_CHARS} characters", field="prompt")
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechUnavailable("espeak-ng is not installed (run ops/browser.sh)")
    async with _running:
        # Text on stdin, never on the command line: it cannot be taken for an option.
        proc = await asyncio.create_subprocess_exec(
            exe, "-v", VOICES[lang], "--stdin", "--stdout",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            wav, err = await asyncio.wait_for(proc.communicate(text.encode("utf-8")), SYNTH_TIMEOUT_SECONDS)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise SpeechUnavailable(f"espeak-ng took longer than {SYNTH_TIMEOUT_SECONDS:.0f} s") from None
    if proc.returncode != 0 or not wav.startswith(b"RIFF"):
        raise SpeechUnavailable(f"espeak-ng failed (exit {proc.returncode}): {err.decode('utf-8', 'replace')[:200]}")
    return wav

"""The phone line's prompts as audio: WAV synthesized by espeak-ng.

A telephony platform that plays audio files instead of speaking text itself
fetches ``GET /v1/channels/voice/audio?call_id=…`` after each step of the
IVR flow and plays the call's current prompt. Only the prompts the flow
itself wrote can be synthesized (there is no free-text parameter), so
nobody can make the server speak arbitrary text, and a semaphore bounds how
many synthesizers run at once (each is a short-lived process of ~20-50 ms
of CPU).

The audio is what a telephone line carries: 8 kHz, 16-bit mono PCM, with a
WAV header that states its true length (espeak-ng streaming to stdout writes
~2 GB placeholders and 22.05 kHz), band-limited to the telephone band before
it is resampled, and a pause between the prompt's phrases (:func:`phrases`),
so a verdict never runs into the goodbye.

espeak-ng comes from Debian (``ops/browser.sh`` installs it); without it the
route answers 503 with a clear reason.
"""

from __future__ import annotations

import array
import asyncio
import io
import math
import operator
import re
import shutil
import sys
import wave
from functools import lru_cache
from html import escape

from ledger.errors import Refused

VOICES = {"zh": "cmn", "en": "en"}  # espeak-ng voices: Mandarin, English
MAX_PROMPT_CHARS = 400
SYNTH_TIMEOUT_SECONDS = 10.0
_running = asyncio.Semaphore(2)
RATE = 8000  # telephone audio
PAUSE_MS = 600  # between phrases
CUTOFF_HZ = 3400  # the telephone band's top: nothing above it may fold back below 4 kHz
TAPS = 10  # windowed-sinc half-width, in input samples
CACHE = 64  # recent prompts' audio kept (the fixed prompts are most of a call)
_PHRASE_END = re.compile(r"(?<=[。！？!?.])\s*")


class SpeechUnavailable(Exception):
    """espeak-ng is not installed or failed: the audio cannot be made."""


def available() -> bool:
    """Whether espeak-ng is on the PATH."""
    return shutil.which("espeak-ng") is not None


def phrases(text: str) -> list[str]:
    """A prompt's phrases (each ends with a full stop, question or exclamation mark)."""
    return [p.strip() for p in _PHRASE_END.split(text or "") if p.strip()]


def pcm_of(wav: bytes) -> tuple[array.array, int]:
    """(16-bit samples, rate) of espeak-ng's WAV, whatever lengths its header claims."""
    rate = int.from_bytes(wav[24:28], "little")
    at = wav.find(b"data", 12)
    samples = array.array("h")
    body = wav[at + 8:] if at >= 0 else b""
    samples.frombytes(body[: len(body) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples, rate


@lru_cache(maxsize=4)
def _phases(rate: int, to: int) -> tuple[int, int, tuple[tuple[float, ...], ...]]:
    """(up, down, one coefficient row per output phase) of the windowed-sinc resampler from ``rate`` to ``to``."""
    g = math.gcd(rate, to)
    up, down = to // g, rate // g  # output n sits at input (n * down) / up
    fc = CUTOFF_HZ / rate  # cycles per input sample
    rows = []
    for phase in range(up):
        frac = (phase * down % up) / up
        row = []
        for j in range(-TAPS + 1, TAPS + 1):  # input k0 + j, k0 = floor(t)
            d = frac - j
            w = 0.5 + 0.5 * math.cos(math.pi * d / TAPS) if abs(d) < TAPS else 0.0
            row.append((2 * fc if d == 0 else math.sin(2 * math.pi * fc * d) / (math.pi * d)) * w)
        rows.append(tuple(row))
    return up, down, tuple(rows)


def resample(samples: array.array, rate: int, to: int = RATE) -> array.array:
    """``samples`` at ``to`` Hz: a Hann-windowed sinc low-pass at :data:`CUTOFF_HZ`, evaluated at the output instants
    (polyphase: the coefficients of each output phase are computed once)."""
    if rate == to:
        return samples
    up, down, rows = _phases(rate, to)
    pad = [0] * TAPS
    x = pad + list(samples) + pad  # x[k + TAPS] is input k
    n_out = len(samples) * up // down
    out = array.array("h", bytes(2 * n_out))
    mul = operator.mul
    for n in range(n_out):
        k0 = n * down // up
        acc = sum(map(mul, x[k0 + 1:k0 + 2 * TAPS + 1], rows[n % up]))
        out[n] = -32768 if acc < -32768 else 32767 if acc > 32767 else int(acc)
    return out


def telephone_wav(samples: array.array) -> bytes:
    """A WAV file (8 kHz, 16-bit, mono) whose header states its true length."""
    if sys.byteorder == "big":
        samples = array.array("h", samples)
        samples.byteswap()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def ssml(text: str) -> str:
    """The prompt as SSML: its phrases with a :data:`PAUSE_MS` break between them (text escaped)."""
    return "<speak>" + f'<break time="{PAUSE_MS}ms"/>'.join(escape(p) for p in phrases(text)) + "</speak>"


_cache: dict[tuple[str, str], bytes] = {}


async def synthesize(text: str, lang: str) -> bytes:
    """A telephone WAV file (8 kHz, 16-bit mono PCM) of ``text`` spoken in ``lang`` (``zh`` or ``en``); recent ones cached."""
    key = (text, lang)
    if key not in _cache:
        wav = await _synthesize(text, lang)
        if len(_cache) >= CACHE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = wav
    return _cache[key]


async def _synthesize(text: str, lang: str) -> bytes:
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
            exe, "-v", VOICES[lang], "-m", "--stdin", "--stdout",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            wav, err = await asyncio.wait_for(proc.communicate(ssml(text).encode("utf-8")), SYNTH_TIMEOUT_SECONDS)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise SpeechUnavailable(f"espeak-ng took longer than {SYNTH_TIMEOUT_SECONDS:.0f} s") from None
    if proc.returncode != 0 or not wav.startswith(b"RIFF"):
        raise SpeechUnavailable(f"espeak-ng failed (exit {proc.returncode}): {err.decode('utf-8', 'replace')[:200]}")
    samples, rate = pcm_of(wav)
    return telephone_wav(await asyncio.to_thread(resample, samples, rate))

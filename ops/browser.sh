#!/usr/bin/env bash
# Headless Chromium and a CJK font for the consumer page's browser tests, zbarimg, and espeak-ng.
# Idempotent: installs only what is missing (Debian packages; Playwright drives
# the system chromium, so no `playwright install` download is needed).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v zbarimg >/dev/null 2>&1 || missing+=(zbar-tools)  # decodes printed QR codes back in a test
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || missing+=(fonts-wqy-microhei)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)  # the phone line's prompts as audio (GET /v1/channels/voice/audio)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "[browser] installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -q "${missing[@]}" >/dev/null

"""ntfy channel: publish to a topic on an ntfy server (https://docs.ntfy.sh/publish/).

``POST <base_url>/<topic>``, the message as the plain-text body, and the
documented headers ``Title``, ``Priority`` (1-5), ``Tags`` (comma-separated;
names of emoji show as icons), ``Click`` (the console link) and, for a
protected topic, ``Authorization: Bearer <token>``.

HTTP headers are Latin-1 on the wire, so a Korean title is sent as RFC 2047
encoded-words (``=?utf-8?b?...?=``), which the ntfy server decodes
(``maybeDecodeHeader`` in its server); ASCII titles go as they are.

ntfy topics are readable by anyone who knows the name unless the server has
access control: like every channel, the text carries opaque ids only
(DESIGN.md §6), and the topic should be unguessable or protected by a token.
"""

from __future__ import annotations

import base64
import re

from dolbom.alerts.notify._http import HttpPoster, http_url
from dolbom.alerts.notify.base import DELIVERY_HEADER, DeliveryError, delivery_id
from dolbom.alerts.notify.notice import Notice
from dolbom.alerts.notify.texts import detail_lines, title_of

# ntfy's own topic rule (1-64 characters of A-Z a-z 0-9 _ -).
TOPIC_RE = re.compile(r"^[-_A-Za-z0-9]{1,64}$")

# ntfy priorities: 5 urgent (max), 4 high, 3 default, 2 low, 1 min.
PRIORITY = {"high": 5, "medium": 4, "low": 3}
RESOLVED_PRIORITY = 3  # an all-clear must not ring like an alarm
_EMOJI = {"high": "rotating_light", "medium": "warning", "low": "wrench"}
_RESOLVED_EMOJI = "white_check_mark"
_WORD_BYTES = 45  # 45 bytes → 60 base64 chars: each encoded-word stays ≤ 75 chars (RFC 2047)


def header_text(text: str) -> str:
    """A header value ntfy reads back as ``text``: ASCII as is, else RFC 2047 encoded-words."""
    text = " ".join(text.split())  # no CR/LF (header injection), single spaces
    if text.isascii():
        return text
    words: list[bytes] = []
    chunk = b""
    for ch in text:  # split on character boundaries, never inside a UTF-8 sequence
        b = ch.encode("utf-8")
        if len(chunk) + len(b) > _WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += b
    if chunk:
        words.append(chunk)
    return " ".join(f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?="
                    for w in words)


def tags_of(notice: Notice) -> list[str]:
    emoji = (_RESOLVED_EMOJI if notice.kind == "resolved"
             else _EMOJI.get(notice.priority, _EMOJI["low"]))
    tags = [emoji]
    if re.fullmatch(r"[a-z0-9_]{1,48}", notice.rule):
        tags.append(notice.rule)
    return tags


class NtfyChannel:
    name = "ntfy"

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 10) -> None:
        self._base = http_url(base_url, "ntfy_url")
        self._token = token or None
        self._http = HttpPoster(self.name, timeout_s)

    async def send(self, address: str, notice: Notice, locale: str) -> None:
        if not TOPIC_RE.match(address):
            raise DeliveryError("ntfy: the topic must be 1-64 characters of A-Z a-z 0-9 _ -",
                                retryable=False)
        prio = (RESOLVED_PRIORITY if notice.kind == "resolved"
                else PRIORITY.get(notice.priority, PRIORITY["low"]))
        headers = {
            "Title": header_text(title_of(notice, locale)),
            "Priority": str(prio),
            "Tags": ",".join(tags_of(notice)),
            "Content-Type": "text/plain; charset=utf-8",
            DELIVERY_HEADER: delivery_id(notice),
        }
        if notice.console_url and notice.console_url.startswith(("https://", "http://")):
            headers["Click"] = header_text(notice.console_url)
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        # The title travels in its header, so the body is the rest of the text.
        body = "\n".join(detail_lines(notice, locale)).encode("utf-8")
        await self._http.post(self._base / address, body, headers)

    async def aclose(self) -> None:
        await self._http.aclose()

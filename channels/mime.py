"""E-mail messages as wire bytes, built once from a fixed skeleton.

The standard library's ``email`` package builds a tree of objects and then
flattens it, which costs several times what the message itself is worth;
a marketing message always has the same shape, so :class:`MessageBuilder`
writes the headers and parts straight into bytes: multipart/alternative
with a text and an HTML part (text alone when there is no HTML), UTF-8,
quoted-printable (lines stay under 78 bytes whatever the template wrote).

Nothing from a message may create a header: control characters (CR and LF
above all) in a subject or a name become spaces, and an address must be
exactly one plain ``local@domain`` or the message is refused.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, formataddr

from channels.base import OutgoingMessage
from core import clock
from core.errors import ConfigError
from core.settings import EmailSettings

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_ADDRESS = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f]+)"
)
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
)
_URI = re.compile(r"[^\s<>\x00-\x1f\x7f]+")
_MAX_ADDRESS = 254
_MAX_PLAIN_HEADER = 200
"""Longer subjects and names are written as folded encoded-words, so no line grows long."""
_WORD_BYTES = 42
"""UTF-8 bytes per encoded-word: 56 base64 characters, 68 with the markers, so even the
first, after ``Subject: ``, keeps its line within 78 (RFC 2047: a word <= 75)."""
_TEXT_PART = b'Content-Type: text/plain; charset="utf-8"\r\n'
_HTML_PART = b'Content-Type: text/html; charset="utf-8"\r\n'
_FOLDED_LIST = ",\r\n "
_QUOTED_PRINTABLE = b"Content-Transfer-Encoding: quoted-printable\r\n"
_SEVEN_BIT = b"Content-Transfer-Encoding: 7bit\r\n"
_BOUNDARY_MARK = "=_"
_FOLDED_ROOM = 77
"""Characters a header line may hold before its CRLF (78 with the space a fold adds)."""
_MAX_LINE = 998
"""RFC 5322 2.1.1: no line may be longer, CRLF not counted."""


class InvalidAddress(ValueError):
    """A recipient that is not exactly one plain e-mail address."""


@dataclass(frozen=True, slots=True)
class BuiltMessage:
    """A message ready for SMTP: the envelope recipient and the bytes to send."""

    recipient: str
    data: bytes
    """CRLF line endings, ASCII only."""

    @property
    def envelope_recipient(self) -> bytes:
        """The argument of RCPT: ``TO:<recipient>`` (plain ASCII, see :func:`mail_address`)."""
        return b"TO:<%s>" % self.recipient.encode("ascii")

    def transmission(self) -> bytes:
        """What follows DATA on the wire: lines that start with a period get one more
        (RFC 5321 4.5.2), then the line holding a lone period ends the message. The
        first line is a header, so only periods after a CRLF need the extra one."""
        data = self.data if self.data.endswith(b"\r\n") else self.data + b"\r\n"
        return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def mail_address(text: str | None) -> str | None:
    """``text`` as one plain address (an international domain in its ASCII form), or None
    when it is anything else: empty, a list, a display name, a quoted local part,
    whitespace or control characters anywhere."""
    if not text or len(text) > _MAX_ADDRESS:
        return None
    match = _ADDRESS.fullmatch(text)
    if match is None:
        return None
    domain = match["domain"]
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if _DOMAIN.fullmatch(domain) is None:
        return None
    return f"{match['local']}@{domain}"


def one_line(value: str) -> str:
    """``value`` with every run of control characters (CR, LF, TAB...) made one space."""
    return _CONTROL.sub(" ", value).strip()


def encoded_words(value: str) -> str:
    """``value`` as RFC 2047 encoded-words (UTF-8, base64), folded one word per line."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for character in value:
        width = len(character.encode("utf-8", "surrogatepass"))
        if size + width > _WORD_BYTES and chunk:
            words.append(_encoded_word("".join(chunk)))
            chunk, size = [], 0
        chunk.append(character)
        size += width
    if chunk:
        words.append(_encoded_word("".join(chunk)))
    return "\r\n ".join(words)


def _encoded_word(text: str) -> str:
    encoded = base64.b64encode(text.encode("utf-8", "replace")).decode("ascii")
    return f"=?utf-8?b?{encoded}?="


def _header_text(value: str, room: int) -> str:
    """A header's free text, safe: plain ASCII folded at spaces into lines of at most 78
    (``room`` on the first), or encoded-words when it is not short plain ASCII."""
    value = one_line(value)
    if not (value.isascii() and len(value) <= _MAX_PLAIN_HEADER and "=?" not in value):
        return encoded_words(value)
    lines: list[list[str]] = [[]]
    width = 0
    for word in value.split(" "):
        if lines[-1] and width + 1 + len(word) > room:
            lines.append([word])
            width, room = len(word), _FOLDED_ROOM
        else:
            width += len(word) + (1 if lines[-1] else 0)
            lines[-1].append(word)
    # Folding puts CRLF before a space, which unfolding takes away: the text is unchanged.
    return "\r\n ".join(" ".join(words) for words in lines)


def mailbox(name: str | None, address: str) -> str:
    """``Name <address>`` for From, To and Reply-To, the name quoted or encoded as needed."""
    name = one_line(name or "")
    if not name:
        return address
    if name.isascii() and len(name) <= _MAX_PLAIN_HEADER and "=?" not in name:
        return formataddr((name, address))
    return f"{encoded_words(name)}\r\n <{address}>"


def body_part(text: str) -> tuple[bytes, bytes]:
    """A part's ``Content-Transfer-Encoding`` header and its body, CRLF line endings.

    ASCII text with no line over 998 bytes goes as it is (7bit: nothing to
    encode, the common case); anything else as UTF-8 quoted-printable. Text
    holding ``=_`` is encoded too: quoted-printable never writes that pair, so
    the multipart boundary, which starts with it, can occur in no part.
    """
    normal = text.replace("\r\n", "\n").replace("\r", "\n")
    if (
        normal.isascii()
        and "\0" not in normal
        and _BOUNDARY_MARK not in normal
        and not _has_long_line(normal)
    ):
        return _SEVEN_BIT, normal.encode("ascii").replace(b"\n", b"\r\n")
    encoded = binascii.b2a_qp(normal.encode("utf-8", "replace"), istext=True)
    return _QUOTED_PRINTABLE, encoded.replace(b"\n", b"\r\n")


def _has_long_line(text: str) -> bool:
    return len(text) > _MAX_LINE and max(map(len, text.split("\n"))) > _MAX_LINE


class MessageBuilder:
    """Builds the bytes of every e-mail the channel sends, for one sender."""

    def __init__(self, email: EmailSettings) -> None:
        sender = mail_address(email.from_address)
        if sender is None:
            raise ConfigError(
                f"channels.email.from_address {email.from_address!r} is not one plain "
                "e-mail address; set it to e.g. news@example.com"
            )
        self.sender = sender
        self._date_of: datetime | None = None
        self._date_text = ""
        self._from = f"From: {mailbox(email.from_name, sender)}\r\n"
        self._reply_to = ""
        if email.reply_to is not None:
            reply_to = mail_address(email.reply_to)
            if reply_to is None:
                raise ConfigError(
                    f"channels.email.reply_to {email.reply_to!r} is not one plain "
                    "e-mail address; set it to e.g. support@example.com, or remove it"
                )
            self._reply_to = f"Reply-To: {reply_to}\r\n"
        self._unsubscribe_address: str | None = None
        if email.unsubscribe_mailto is not None:
            self._unsubscribe_address = mail_address(email.unsubscribe_mailto)
            if self._unsubscribe_address is None:
                raise ConfigError(
                    f"channels.email.unsubscribe_mailto {email.unsubscribe_mailto!r} is not "
                    "one plain e-mail address; set it to e.g. unsubscribe@example.com"
                )

    def build(self, message: OutgoingMessage) -> BuiltMessage:
        """The message for SMTP; :class:`InvalidAddress` when its address is not usable."""
        recipient = mail_address(message.address)
        if recipient is None:
            raise InvalidAddress("invalid address")
        head = (
            f"Message-ID: {one_line(message.message_id)}\r\n"
            f"Date: {self._date()}\r\n"
            f"{self._from}"
            f"To: {mailbox(message.name, recipient)}\r\n"
            f"{self._reply_to}"
            f"Subject: {_header_text(message.subject or '', _FOLDED_ROOM - len('Subject: '))}\r\n"
            "MIME-Version: 1.0\r\n"
            f"{self._unsubscribe_headers(message)}"
        ).encode("ascii")
        text_encoding, text = body_part(message.text)
        if message.html is None:
            data = b"".join((head, _TEXT_PART, text_encoding, b"\r\n", text))
        else:
            html_encoding, html = body_part(message.html)
            boundary = f"{_BOUNDARY_MARK}cadence_{message.outbox_id}".encode("ascii")
            delimiter = b"\r\n--" + boundary + b"\r\n"
            data = b"".join(
                (
                    head,
                    b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n',
                    b"\r\n--" + boundary + b"\r\n",
                    _TEXT_PART,
                    text_encoding,
                    b"\r\n",
                    text,
                    delimiter,
                    _HTML_PART,
                    html_encoding,
                    b"\r\n",
                    html,
                    b"\r\n--" + boundary + b"--\r\n",
                )
            )
        return BuiltMessage(recipient, data)

    def _date(self) -> str:
        # Formatting a date costs a fifth of a message; a batch shares a handful of seconds.
        now = clock.now().replace(microsecond=0)
        if now != self._date_of:
            self._date_of, self._date_text = now, format_datetime(now)
        return self._date_text

    def _unsubscribe_headers(self, message: OutgoingMessage) -> str:
        """``List-Unsubscribe`` (HTTPS and mailto) and RFC 8058 one-click, on marketing."""
        if message.category != "marketing":
            return ""
        https = _safe_uri(message.unsubscribe_url)
        mailto = _safe_uri(message.unsubscribe_mailto) or self._mailto(https)
        links = [f"<{uri}>" for uri in (https, mailto) if uri is not None]
        if not links:
            return ""
        headers = f"List-Unsubscribe: {_FOLDED_LIST.join(links)}\r\n"
        if https is not None:
            headers += "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        return headers

    def _mailto(self, https: str | None) -> str | None:
        """The configured unsubscribe address, its subject naming the message's link token
        (the last part of the HTTPS link), so a mailed request finds the customer too."""
        if self._unsubscribe_address is None:
            return None
        token = https.rstrip("/").rpartition("/")[2] if https else ""
        subject = f"unsubscribe%20{token}" if token else "unsubscribe"
        return f"mailto:{self._unsubscribe_address}?subject={subject}"


def _safe_uri(uri: str | None) -> str | None:
    """``uri`` when it can sit between angle brackets in a header, else None."""
    if uri is None or _URI.fullmatch(uri) is None:
        return None
    return uri

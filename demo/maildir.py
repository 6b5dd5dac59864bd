"""Read back what the SMTP sink stored (demo/smtp_sink.py): the data of the /mailbox/ pages.

Anything can end up in a Maildir, so nothing here trusts a message to be well formed: a
broken one is shown as well as it can be, never allowed to break the page.
"""

import mailbox
import re
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

_parser = BytesParser(policy=policy.default)
_LONG_AGO = datetime.min.replace(tzinfo=UTC)


def list_messages(maildir, limit=None):
    """A summary of every message, newest first; [] when nothing was ever received.

    With `limit`, only the `limit` newest: a newsletter to 10,000 demo subscribers puts
    10,000 messages in the mailbox, too many to read for one page.
    """
    keys = message_keys(maildir)
    box = _open(maildir)
    if limit is not None:
        keys = sorted(keys, key=_delivered_at, reverse=True)[:limit]
    summaries = []
    for key in keys:
        message = _read(box, key, headers_only=True)
        if message is not None:  # None: deleted since we listed it
            summaries.append(_summary(key, message))
    summaries.sort(key=lambda m: m["received"] or m["date"] or _LONG_AGO, reverse=True)
    return summaries


def get_message(maildir, key):
    """One message: its summary, all its headers and its text and HTML parts; None if unknown."""
    box = _open(maildir)
    message = None if box is None else _read(box, key)
    if message is None:
        return None
    headers = [
        (name, value)
        for name in dict.fromkeys(message.keys())  # each name once, first-seen order
        for value in _headers(message, name)
    ]
    return {
        **_summary(key, message),
        "headers": headers,
        "text": _part(message, "plain"),
        "html": _part(message, "html"),
    }


def message_keys(maildir):
    """The key of every message in the Maildir; [] when there is none (yet)."""
    box = _open(maildir)
    if box is None:
        return []
    try:
        return box.keys()
    except OSError:  # not a Maildir (yet): no new/ or cur/ inside
        return []


def _delivered_at(key):
    """When a message was stored, from its Maildir name ("1764109231.M123456P4242Q7.host":
    seconds, then microseconds), so the newest are found without opening a file."""
    match = re.match(r"(\d+)(?:\.M(\d+))?", key)
    return (int(match[1]), int(match[2] or 0)) if match else (0, 0)


def _open(maildir):
    try:
        return mailbox.Maildir(maildir, factory=None, create=False)
    except mailbox.NoSuchMailboxError:
        return None


def _read(box, key, headers_only=False):
    # The key comes from a URL: Maildir only finds keys it listed itself, so it cannot be
    # used to read a file outside the Maildir.
    try:
        return _parser.parsebytes(box.get_bytes(key), headersonly=headers_only)
    except (KeyError, OSError):
        return None


def _summary(key, message):
    received = _headers(message, "Received")
    return {
        "key": key,
        "date": _datetime(_header(message, "Date")),
        # The sink's own Received header is the first one: when it stored the message.
        "received": _datetime(received[0].rpartition(";")[2]) if received else None,
        "from": _header(message, "From"),
        "to": _header(message, "To"),
        "subject": _header(message, "Subject"),
        "message_id": _header(message, "Message-ID"),
        # The sender's port: messages that came over one SMTP connection share it.
        "connection": _connection_of(received[0]) if received else None,
    }


def _connection_of(received):
    match = re.search(r"\(\S+ port (\d+)\)", received)
    return int(match[1]) if match else None


def _headers(message, name):
    try:
        return [str(value) for value in message.get_all(name, [])]
    except Exception:
        # The header parser of the modern email policy raises on some hostile input; one
        # bad header must not hide the rest of the message.
        return ["(unreadable header)"]


def _header(message, name):
    values = _headers(message, name)
    return values[0] if values else ""


def _datetime(value):
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    # "-0000" means "time zone unknown" and comes back naive; it cannot be compared with the
    # others unless it gets one.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _part(message, subtype):
    """The decoded text of the text/<subtype> body part, or None when there is none."""
    try:
        part = message.get_body(preferencelist=(subtype,))
    except Exception:  # a malformed MIME structure, see _headers
        return None
    if part is None:
        return None
    try:
        return part.get_content()
    except LookupError:  # a charset Python does not know: show what can be shown
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", errors="replace")

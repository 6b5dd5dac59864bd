"""A local SMTP server that keeps every message in a Maildir and can be told to misbehave.

The demo sends real SMTP, so the code that handles a slow or failing mail server is exercised
for real. The misbehaviour comes from *knobs* in a small JSON file, read again for every
message, so they can be turned while the sink runs (`update_controls`, or any editor):

    latency      seconds to wait before answering DATA
    reply_delay  seconds to wait after storing a message before answering 250: a sender that
                 dies meanwhile cannot know that the message arrived (an email "in doubt")
    fail_rate    share of messages answered "451, try again later" at DATA (0..1)
    fail_next    the next N messages get that 451; counted down in the file
    reject_next  the next N messages have their recipients refused with 550; counted down
"""

import asyncio
import logging
import mailbox
import math
import random
from email.utils import formatdate
from pathlib import Path

from aiosmtpd.smtp import SMTP

from demo.controlfile import read_json_object, write_json_atomically

log = logging.getLogger(__name__)

DEFAULT_CONTROLS = {
    "latency": 0.0,
    "reply_delay": 0.0,
    "fail_rate": 0.0,
    "fail_next": 0,
    "reject_next": 0,
}

TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, try again later"
MAILBOX_UNAVAILABLE = "550 5.1.1 Mailbox unavailable"


def read_controls(path):
    """The knobs in the file at `path`, with defaults for anything missing or unreadable.

    The file is edited by hand while the sink runs, so a typo must not take the sink down.
    """
    data = read_json_object(path)
    controls = {}
    for name, default in DEFAULT_CONTROLS.items():
        try:
            value = type(default)(data.get(name, default))
        except (TypeError, ValueError, OverflowError):
            value = default
        out_of_range = not math.isfinite(value) or value < 0 or (name == "fail_rate" and value > 1)
        controls[name] = default if out_of_range else value
    return controls


def update_controls(path, **changes):
    """Change some knobs, keep the others; returns the knobs as now written."""
    unknown = changes.keys() - DEFAULT_CONTROLS.keys()
    if unknown:
        raise TypeError(f"unknown sink control(s): {', '.join(sorted(unknown))}")
    controls = {**read_controls(path), **changes}
    write_json_atomically(path, controls)
    return controls


class SinkHandler:
    """aiosmtpd handler: refuse or fail as the knobs say, otherwise store in the Maildir."""

    def __init__(self, maildir, control_path):
        Path(maildir).parent.mkdir(parents=True, exist_ok=True)  # Maildir makes one level only
        self.maildir = mailbox.Maildir(maildir, factory=None, create=True)
        self.control_path = control_path

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # reject_next counts messages, not recipients: the first RCPT of a message decides,
        # and its later recipients get the same answer without touching the counter.
        if not hasattr(envelope, "sink_refused"):
            envelope.sink_refused = self._take("reject_next")
        if envelope.sink_refused:
            log.info("refused %s (reject_next)", address)
            return MAILBOX_UNAVAILABLE
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        controls = read_controls(self.control_path)
        failing = self._take("fail_next") or random.random() < controls["fail_rate"]
        if controls["latency"]:
            await asyncio.sleep(controls["latency"])
        if failing:
            log.info("answered 451 to a message for %s", ", ".join(envelope.rcpt_tos))
            return TEMPORARY_FAILURE
        key = self.maildir.add(self._with_trace_headers(session, envelope))
        log.info("stored %s for %s", key, ", ".join(envelope.rcpt_tos))
        if controls["reply_delay"]:
            await asyncio.sleep(controls["reply_delay"])
        return "250 2.0.0 OK: stored"

    def _take(self, counter):
        """Count down one of the `*_next` knobs; True if it was above zero."""
        # No await between reading and writing, so two connections served by the same
        # event loop cannot both take the last one.
        left = read_controls(self.control_path)[counter]
        if left > 0:
            update_controls(self.control_path, **{counter: left - 1})
        return left > 0

    @staticmethod
    def _with_trace_headers(session, envelope):
        # What a real mail server adds on delivery: the envelope, which Bcc recipients only
        # appear in, and when and over which connection (the sender's port) it arrived.
        trace = (
            f"Return-Path: <{envelope.mail_from}>\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\n"
            f"Received: from {session.host_name} ({session.peer[0]} port {session.peer[1]})"
            " by smtp-sink;"
            f" {formatdate(localtime=True)}\n"
        )
        # SMTP lines end in CRLF, files in a Maildir in LF.
        return trace.encode() + envelope.content.replace(b"\r\n", b"\n")


async def start_server(handler, host, port):
    """Start listening on host:port (0: any free port); returns the asyncio server."""
    # A fixed name for the greeting: left out, aiosmtpd looks up the machine's FQDN for every
    # connection, which can stall for seconds on a laptop with a slow resolver.
    return await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler, hostname="smtp-sink", enable_SMTPUTF8=True), host, port
    )

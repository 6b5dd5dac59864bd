"""The local SMTP sink, its live knobs, its management command and the mailbox pages."""

import asyncio
import html
import json
import mailbox
import os
import re
import select
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from types import SimpleNamespace

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.urls import reverse

from demo.maildir import get_message, list_messages
from demo.smtp_sink import (
    DEFAULT_CONTROLS,
    SinkHandler,
    read_controls,
    start_server,
    update_controls,
)

TEXT = "Thank you for your order.\nTotal: $12.00\n"
HTML = '<p class="x">Thank you &amp; bye</p><script>alert("pwned")</script>\n'


@pytest.fixture
def sink(tmp_path):
    """The sink's server on a free port, in an event loop of its own thread."""
    maildir, control = tmp_path / "outbox", tmp_path / "sink.json"
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    handler = SinkHandler(maildir, control)
    server = asyncio.run_coroutine_threadsafe(start_server(handler, "127.0.0.1", 0), loop).result(
        timeout=5
    )
    try:
        yield SimpleNamespace(
            port=server.sockets[0].getsockname()[1], maildir=maildir, control=control
        )
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def make_email(subject="Your order", to=("alice@example.test",), html_part=HTML):
    message = EmailMessage()
    message["From"] = "Shop Jobs <orders@shop-jobs.test>"
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = "<order-1@shop-jobs.test>"
    message.set_content(TEXT)
    if html_part is not None:
        message.add_alternative(html_part, subtype="html")
    return message


def send(port, message=None, to=None):
    message = message or make_email()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(message, to_addrs=to)


# --- storing and reading back --------------------------------------------------------------


def test_a_message_is_stored_once_and_read_back_with_both_parts(sink):
    send(sink.port, make_email(subject="Grüße from the shop"))

    [summary] = list_messages(sink.maildir)
    assert summary["subject"] == "Grüße from the shop"
    assert summary["from"] == "Shop Jobs <orders@shop-jobs.test>"
    assert summary["to"] == "alice@example.test"
    assert summary["message_id"] == "<order-1@shop-jobs.test>"
    assert summary["received"] is not None

    message = get_message(sink.maildir, summary["key"])
    assert message["text"] == TEXT
    assert message["html"] == HTML
    headers = dict(message["headers"])
    assert headers["Return-Path"] == "<orders@shop-jobs.test>"
    assert headers["X-Envelope-To"] == "alice@example.test"
    assert "\r" not in mailbox.Maildir(sink.maildir).get_bytes(summary["key"]).decode()


def test_an_unknown_key_is_none(sink):
    send(sink.port)
    assert get_message(sink.maildir, "no-such-key") is None
    assert get_message(sink.maildir, "../../etc/passwd") is None
    assert get_message(sink.maildir.parent / "never-created", "x") is None
    assert list_messages(sink.maildir.parent / "never-created") == []


def test_newest_first_by_the_sinks_received_header(tmp_path):
    box = mailbox.Maildir(tmp_path / "outbox", create=True)
    for subject, trace in [
        ("middle", "Received: from a by smtp-sink; Tue, 02 Jan 2024 10:00:00 +0000\n"),
        ("no date at all", ""),
        ("newest", "Received: from a by smtp-sink; Wed, 03 Jan 2024 10:00:00 +0000\n"),
        # The sender's Date says it is the newest, but it arrived first.
        (
            "oldest",
            "Received: from a by smtp-sink; Mon, 01 Jan 2024 10:00:00 +0000\n"
            "Date: Fri, 01 Jan 2100 00:00:00 +0000\n",
        ),
    ]:
        box.add(f"{trace}Subject: {subject}\n\nbody\n".encode())

    subjects = [m["subject"] for m in list_messages(tmp_path / "outbox")]
    assert subjects == ["newest", "middle", "oldest", "no date at all"]


def test_malformed_message_files_do_not_break_reading(tmp_path):
    box = mailbox.Maildir(tmp_path / "outbox", create=True)
    keys = [
        box.add(b"\x00\xff\xfe not an email at all\n\n\x80\x81"),
        box.add(b""),
        box.add(
            b"From: <<<@@@>>>\nDate: not a date\nMessage-ID: <\n"
            b"Content-Type: multipart/alternative; boundary=\n\n--\n"
        ),
        box.add(b"Subject: odd charset\nContent-Type: text/plain; charset=x-nope\n\nh\xe9llo\n"),
    ]

    summaries = list_messages(tmp_path / "outbox")
    assert sorted(m["key"] for m in summaries) == sorted(keys)
    for key in keys:
        assert get_message(tmp_path / "outbox", key)["key"] == key
    assert get_message(tmp_path / "outbox", keys[3])["text"].startswith("h")


# --- the knobs -----------------------------------------------------------------------------


def test_fail_next_answers_451_that_many_times_then_stores(sink):
    update_controls(sink.control, fail_next=2)

    for left in (1, 0):
        with pytest.raises(smtplib.SMTPDataError) as failed:
            send(sink.port)
        assert failed.value.smtp_code == 451
        assert failed.value.smtp_error == b"4.3.0 Temporary failure, try again later"
        assert read_controls(sink.control)["fail_next"] == left
    assert list_messages(sink.maildir) == []

    send(sink.port)
    assert len(list_messages(sink.maildir)) == 1


def test_reject_next_refuses_the_recipient_with_550_then_accepts(sink):
    update_controls(sink.control, reject_next=1)

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(sink.port)
    assert refused.value.recipients == {"alice@example.test": (550, b"5.1.1 Mailbox unavailable")}
    assert read_controls(sink.control)["reject_next"] == 0
    assert list_messages(sink.maildir) == []

    send(sink.port)
    assert len(list_messages(sink.maildir)) == 1


def test_reject_next_counts_messages_not_recipients(sink):
    update_controls(sink.control, reject_next=2)
    both = ["alice@example.test", "bob@example.test"]

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(sink.port, to=both)
    assert set(refused.value.recipients) == set(both)
    assert read_controls(sink.control)["reject_next"] == 1

    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(sink.port, to=both)
    send(sink.port, to=both)
    [summary] = list_messages(sink.maildir)
    headers = dict(get_message(sink.maildir, summary["key"])["headers"])
    assert headers["X-Envelope-To"] == "alice@example.test, bob@example.test"


def test_fail_rate_one_fails_every_message(sink):
    update_controls(sink.control, fail_rate=1.0)
    for _ in range(3):
        with pytest.raises(smtplib.SMTPDataError) as failed:
            send(sink.port)
        assert failed.value.smtp_code == 451
    assert list_messages(sink.maildir) == []

    update_controls(sink.control, fail_rate=0.0)  # live: no restart
    send(sink.port)
    assert len(list_messages(sink.maildir)) == 1


def test_latency_delays_the_answer_to_data(sink):
    update_controls(sink.control, latency=0.3)
    started = time.monotonic()
    send(sink.port)
    assert time.monotonic() - started >= 0.3
    assert len(list_messages(sink.maildir)) == 1


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2, 3]",
        '"latency"',
        "",
        '{"latency": "slow", "fail_rate": 7, "fail_next": -3, "reject_next": NaN}',
        '{"latency": Infinity, "fail_rate": [1], "fail_next": "x", "reject_next": null}',
    ],
)
def test_a_garbage_control_file_means_defaults(sink, content):
    sink.control.write_text(content)
    assert read_controls(sink.control) == DEFAULT_CONTROLS
    send(sink.port)
    assert len(list_messages(sink.maildir)) == 1


def test_controls_defaults_and_atomic_update(tmp_path):
    path = tmp_path / "deeper" / "sink.json"
    assert read_controls(path) == DEFAULT_CONTROLS

    assert update_controls(path, latency=1.5) == {**DEFAULT_CONTROLS, "latency": 1.5}
    assert update_controls(path, fail_next=3) == {
        **DEFAULT_CONTROLS,
        "latency": 1.5,
        "fail_next": 3,
    }
    assert json.loads(path.read_text())["fail_next"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["sink.json"]  # no temp file left

    with pytest.raises(TypeError, match="fail_nxt"):
        update_controls(path, fail_nxt=1)


# --- the management command ----------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_command_serves_until_sigterm(tmp_path):
    maildir, control = tmp_path / "outbox", tmp_path / "sink.json"
    # A pending experiment in the file: the counter survives the start, latency does not.
    control.write_text(json.dumps({"latency": 30, "fail_rate": 0.5, "fail_next": 1}))
    port = free_port()
    command = [sys.executable, "manage.py", "smtp_sink", "--port", str(port)]
    command += ["--maildir", str(maildir), "--control", str(control), "--fail-rate", "0"]
    process = subprocess.Popen(
        command,
        cwd=django_settings.BASE_DIR,
        # Buffered output, as from most launchers: the ready line must be flushed by itself.
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, "the sink did not say it was listening"
        assert process.stdout.readline().strip() == (
            f"SMTP sink listening on 127.0.0.1:{port}, storing mail in {maildir}"
        )
        assert read_controls(control) == {**DEFAULT_CONTROLS, "fail_next": 1}

        with pytest.raises(smtplib.SMTPDataError):
            send(port)
        send(port)
        assert len(list_messages(maildir)) == 1

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "SMTP sink stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--fail-rate", "1.5", "--fail-rate must be between 0 and 1"),
        ("--fail-rate", "-0.1", "--fail-rate must be between 0 and 1"),
        ("--latency", "-1", "--latency must be zero or more"),
        ("--latency", "nan", "--latency must be zero or more"),
    ],
)
def test_the_command_refuses_invalid_values(tmp_path, option, value, message):
    control = tmp_path / "sink.json"
    with pytest.raises(CommandError, match=message):
        call_command("smtp_sink", option, value, "--control", str(control), "--port", "0")
    assert not control.exists()


# --- the mailbox pages ---------------------------------------------------------------------


@pytest.fixture
def outbox(sink, settings):
    settings.DEBUG = True
    settings.SMTP_SINK_DIR = sink.maildir
    send(sink.port, make_email(subject="Order #7 <confirmed>"))
    [summary] = list_messages(sink.maildir)
    return summary


def test_the_list_shows_the_message(client, outbox):
    response = client.get(reverse("demo:mailbox"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Order #7 &lt;confirmed&gt;" in content
    assert reverse("demo:mailbox_message", args=[outbox["key"]]) in content


def test_the_detail_shows_both_parts_and_sandboxes_the_html(client, outbox):
    response = client.get(reverse("demo:mailbox_message", args=[outbox["key"]]))
    assert response.status_code == 200
    content = response.content.decode()

    assert f'<pre class="mail-text">{html.escape(TEXT)}</pre>' in content
    assert "&lt;order-1@shop-jobs.test&gt;" in content  # the headers

    frames = re.findall(r"<iframe ([^>]*)>", content)
    assert len(frames) == 1
    srcdoc = re.search(r'\ssrcdoc="([^"]*)"', frames[0])
    assert html.unescape(srcdoc.group(1)) == HTML
    # "sandbox" with no allow-* token: no scripts, no same origin.
    assert re.search(r"(^|\s)sandbox(\s|$)", frames[0])
    assert "allow-" not in frames[0]
    # Nowhere on the page is the mail's HTML live markup.
    assert "<script>alert" not in content
    assert '<p class="x">' not in content


def test_a_message_without_html_has_no_frame(client, sink, settings):
    settings.DEBUG = True
    settings.SMTP_SINK_DIR = sink.maildir
    send(sink.port, make_email(html_part=None))
    [summary] = list_messages(sink.maildir)
    response = client.get(reverse("demo:mailbox_message", args=[summary["key"]]))
    assert response.status_code == 200
    assert b"<iframe" not in response.content
    assert b"no HTML part" in response.content


def test_an_unknown_key_is_404(client, outbox):
    response = client.get(reverse("demo:mailbox_message", args=["no-such-key"]))
    assert response.status_code == 404


def test_the_outbox_is_404_without_debug(client, outbox, settings):
    settings.DEBUG = False
    assert client.get(reverse("demo:mailbox")).status_code == 404
    url = reverse("demo:mailbox_message", args=[outbox["key"]])
    assert client.get(url).status_code == 404


def test_an_empty_mailbox(client, settings, tmp_path):
    settings.DEBUG = True
    settings.SMTP_SINK_DIR = tmp_path / "nothing-here-yet"
    response = client.get(reverse("demo:mailbox"))
    assert response.status_code == 200
    assert b"No mail yet" in response.content


def test_a_path_in_the_key_is_404(client, outbox):
    assert client.get("/mailbox/..%2F..%2Fetc%2Fpasswd/").status_code == 404


def test_the_old_outbox_address_leads_to_the_mailbox(client, settings):
    settings.DEBUG = True
    response = client.get("/outbox/")
    assert response.status_code == 301 and response["Location"] == reverse("demo:mailbox")

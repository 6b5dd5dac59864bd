"""Staff write a newsletter, send it, and cancel it from its page before a worker takes it."""

import pytest

from demo.subscribers import seed_subscribers
from jobs.models import Job
from notifications.models import Newsletter
from testkit.processes import wait_for
from tests.browser.servers import consumer_paused
from tests.browser.steps import expect, log_in, make_staff

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_staff_cancel_a_newsletter_and_nobody_gets_it(page, worker, sink, django_user_model):
    seed_subscribers(30)
    log_in(page, make_staff(django_user_model), then="/staff/newsletters/")
    page.get_by_label("Subject").fill("Wrong price inside")
    page.get_by_label("Body").fill("Mugs at $0.00!")
    page.get_by_role("button", name="Save the draft").click()

    # The emails queue is held: "send" leaves the newsletter waiting for a worker.
    with consumer_paused(worker, "emails"):
        page.get_by_role("button", name="Send to 30 confirmed subscribers").click()
        expect(page.get_by_role("heading", level=2).first).to_have_text("Waiting for a worker")
        page.get_by_role("button", name="Cancel: send it to nobody else").click()
        expect(page.locator(".messages")).to_contain_text("Cancelled")
        expect(page.get_by_role("heading", level=2).first).to_have_text("Cancelled")

    # The planner's message, taken by the worker now, finds its job cancelled: nothing goes.
    wait_for(lambda: "was cancelled by clerk" in worker.log(), message="the planner's message")
    expect(page.locator("h1 .badge")).to_have_text("cancelled")
    assert Newsletter.objects.get().state == Newsletter.State.CANCELLED
    assert Job.objects.get(kind="newsletter").state == Job.State.CANCELLED
    # The sink serves every browser test: only this newsletter's emails count.
    assert [m for m in sink.messages() if m["subject"] == "Wrong price inside"] == []

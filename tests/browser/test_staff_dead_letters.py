"""Staff find a dead letter in the admin, replay it, and the job goes through."""

import pytest

from jobs.models import Job
from shop import services
from shop.models import Product
from testkit.processes import wait_for
from tests.browser.steps import JOB_TIMEOUT_MS, confirmation_row, expect, log_in, make_staff
from tests.flows import confirmation_job, wait_for_job_state

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.django_db(transaction=True)]

DEAD_LETTERS = "/admin/jobs/job/dead-letters/"


def test_staff_replay_a_dead_letter_and_the_email_goes_out(
    page, broker, sink, worker, django_user_model, screenshot
):
    # The mail server refuses the next message for good (SMTP 550): the confirmation job
    # fails without retrying and RabbitMQ parks its message in emails.dead.
    sink.set(reject_next=1)
    mug = Product.objects.create(name="Blue Mug", slug="blue-mug", price="12.50")
    order = services.place_order(
        customer_name="Grace Hopper",
        email="grace@example.com",
        shipping_address="1 Compiler Lane",
        items=[(mug, 1)],
    )
    job = wait_for_job_state(order, Job.State.FAILED)
    wait_for(lambda: broker.peek("emails.dead"), message="the dead letter")

    staff = make_staff(django_user_model)
    log_in(page, staff, then=DEAD_LETTERS)
    section = page.get_by_role("heading", name="emails.dead")
    expect(section).to_contain_text("(1 message)")
    letter = page.locator("tr", has_text=job.task_id)
    expect(letter).to_contain_text("notifications.send_order_confirmation")
    expect(letter).to_contain_text("550")
    expect(letter).to_contain_text("emails: rejected \u00d71")

    letter.get_by_role("button", name="Replay").click()
    expect(page.locator(".messagelist")).to_contain_text("1 message(s) of emails.dead: replay done")
    expect(section).to_contain_text("(0 messages)")

    # The replayed job runs again, with a fresh retry budget, and this time the email goes out:
    # its order page (which refreshes itself) says so, and its timeline shows the replay.
    page.goto(order.get_absolute_url())
    expect(confirmation_row(page)).to_contain_text("sent at", timeout=JOB_TIMEOUT_MS)
    expect(confirmation_row(page)).to_contain_text("on attempt 1")
    expect(page.locator(".timeline li", has_text="replayed")).to_have_count(1)
    # The sink serves every browser test: count only this order's email.
    assert [m["to"] for m in sink.messages()].count("grace@example.com") == 1
    assert confirmation_job(order).replays == 1
    screenshot("order-after-replay")

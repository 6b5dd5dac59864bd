"""Staff find a job on the jobs page by filter, open it, cancel it, and read its timeline."""

import uuid

import pytest

from jobs.models import Job, JobEvent
from tests.browser.steps import expect, log_in, make_staff

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_staff_filter_the_jobs_open_one_cancel_it_and_see_the_timeline(
    page, django_user_model, screenshot
):
    # A confirmation waiting in the broker (no message is needed: a cancelled job's message
    # would be acknowledged unrun), beside a finished one the filter leaves out.
    waiting = Job.objects.create(
        key="order_confirmation:41", kind="order_confirmation", subject="order:41",
        task_name="notifications.send_order_confirmation", task_id=str(uuid.uuid4()),
        state=Job.State.QUEUED,
    )  # fmt: skip
    Job.objects.create(
        key="order_confirmation:40", kind="order_confirmation", subject="order:40",
        task_name="notifications.send_order_confirmation", task_id=str(uuid.uuid4()),
        state=Job.State.SUCCEEDED,
    )  # fmt: skip
    JobEvent.objects.create(job=waiting, kind=JobEvent.Kind.QUEUED)
    log_in(page, make_staff(django_user_model), then="/staff/jobs/")

    page.get_by_label("State").select_option("queued")
    page.get_by_label("Queue").select_option("emails")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#jobs-count")).to_have_text("1 job")
    expect(page.get_by_role("link", name="order_confirmation:40")).to_have_count(0)
    page.get_by_role("link", name="order_confirmation:41").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Confirmation email")
    page.get_by_role("button", name="Cancel this job").click()
    expect(page.locator(".messages")).to_contain_text("Cancelled: no worker will run it.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("cancelled")
    timeline = page.locator(".timeline li")
    expect(timeline.first).to_contain_text("queued")
    expect(timeline.last).to_contain_text("cancelled: by clerk")
    expect(page.get_by_role("button", name="Cancel this job")).to_have_count(0)
    screenshot("cancelled")
    assert Job.objects.get(pk=waiting.pk).state == Job.State.CANCELLED

"""Staff watch the operations dashboard: its figures update in place, the page never reloads."""

import pytest
from django_celery_results.models import TaskResult

from jobs.tasks import noop
from tests.browser.servers import consumer_paused
from tests.browser.steps import JOB_TIMEOUT_MS, expect, log_in, make_staff

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_the_dashboard_updates_its_figures_without_reloading(
    page, worker, django_user_model, screenshot
):
    TaskResult.objects.create(task_id="ok-1", status="SUCCESS")
    TaskResult.objects.create(task_id="bad-1", status="FAILURE")
    log_in(page, make_staff(django_user_model), then="/staff/dashboard/")
    # A mark on this page's window: a reload would start a new window, without it.
    page.evaluate("window.markedBeforeTheUpdate = true")

    emails = page.locator("#dashboard-panels tbody tr").filter(
        has=page.get_by_role("cell", name="emails", exact=True)
    )
    waiting = emails.locator("td").nth(1)
    expect(waiting).to_have_text("0")
    with consumer_paused(worker, "emails"):
        for i in range(3):
            noop.delay(f"waiting-{i}")
        # Only the page's own updates can show it: nothing here reloads or navigates.
        expect(waiting).to_have_text("3", timeout=JOB_TIMEOUT_MS)
        assert page.evaluate("window.markedBeforeTheUpdate") is True, "the page was reloaded"
        screenshot("three-waiting")

    # The chart's bars are painted in the legend's colours (a stylesheet rule once made them
    # all blue), on a y-axis that starts at 0.
    colour = "el => getComputedStyle(el).fill"
    assert page.locator("svg.chart rect.succeeded").first.evaluate(colour) == "rgb(22, 163, 74)"
    assert page.locator("svg.chart rect.failed").first.evaluate(colour) == "rgb(220, 38, 38)"
    expect(page.locator("svg.chart text.y-axis").first).to_have_text("0")


def test_staff_pause_a_queue_and_resume_it_from_the_dashboard(
    page, worker, django_user_model, screenshot
):
    log_in(page, make_staff(django_user_model), then="/staff/dashboard/")
    emails = page.locator("#dashboard-panels tbody tr").filter(
        has=page.get_by_role("cell", name="emails", exact=True)
    )
    waiting = emails.locator("td").nth(1)

    emails.get_by_role("button", name="Pause").click()
    expect(emails).to_contain_text("paused by clerk")
    expect(emails.locator("td").nth(2)).to_have_text("0", timeout=JOB_TIMEOUT_MS)  # consumers
    noop.delay("held while paused")
    expect(waiting).to_have_text("1", timeout=JOB_TIMEOUT_MS)
    screenshot("emails-paused")

    emails.get_by_role("button", name="Resume").click()
    expect(emails).not_to_contain_text("paused by")
    expect(waiting).to_have_text("0", timeout=JOB_TIMEOUT_MS)

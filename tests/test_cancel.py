"""Cancelling jobs without a broker: the rules of jobs/cancel.py, the runner's side of them, and
the stop points of a report and a supplier fetch. The cancels through a real worker and broker
(a restart between cancel and delivery, a newsletter stopped mid-send, a revoke from Flower)
are in test_cancel_flow.py."""

from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs import cancel, outbox, runner
from jobs.logs import current_job
from jobs.models import Job, JobEvent
from notifications.tasks import send_order_confirmation
from shop import reports
from shop.models import Order, OrderLine, Product, SalesReport
from shop.tasks import build_sales_report
from suppliers import scraping
from suppliers.models import FetchRun, PageResult, Supplier, SupplierListing

pytestmark = pytest.mark.django_db

KEY = "order_confirmation:1"


def make_job(state, **fields):
    fields = {"kind": "order_confirmation", "task_name": "t", "task_id": KEY, **fields}
    return Job.objects.create(key=KEY, state=state, **fields)


def claim():
    return runner.claim_job(KEY, task_name="t", task_id=KEY, args=[1], lease_seconds=30)


@contextmanager
def running(key=KEY):
    """What the runner sets around an attempt: the job the stop points look at."""
    token = current_job.set({"key": key, "attempt": 1})
    try:
        yield
    finally:
        current_job.reset(token)


def attempt(job, work):
    """One attempt of `job` by the runner, as run_once makes it once the job is claimed."""
    with running(job.key):
        return send_order_confirmation._attempt(job, work, "emails.dead")


def timeline(job):
    return list(JobEvent.objects.filter(job=job).values_list("kind", "detail"))


@pytest.mark.parametrize("state", cancel.NOT_RUNNING)
def test_a_job_nobody_runs_yet_is_cancelled_at_once_and_never_claimed(state):
    job = make_job(state)
    assert cancel.cancel(job.pk, by="alice") == Job.State.CANCELLED

    job.refresh_from_db()
    assert (job.state, job.cancelled_by) == (Job.State.CANCELLED, "alice")
    assert job.finished_at is not None
    assert timeline(job) == [(JobEvent.Kind.CANCELLED, "by alice")]
    # Its message, taken later by any worker, finds it final and does nothing.
    taken = claim()
    assert not taken.got_it and taken.cancelled
    assert Job.objects.get(pk=job.pk).attempts == 0


def test_a_cancelled_job_left_in_the_outbox_is_never_published(monkeypatch):
    job = make_job(Job.State.PENDING)
    cancel.cancel(job.pk, by="alice")
    published = []
    monkeypatch.setattr(outbox, "publish_many", lambda pks: published.extend(pks))
    outbox.republish_pending_jobs(older_than=timedelta(0))
    assert published == []


def test_a_running_job_is_asked_and_stops_at_its_next_stop_point():
    make_job(Job.State.QUEUED)
    job = claim().job
    assert cancel.cancel(job.pk, by="alice") == Job.State.STARTED
    assert timeline(job)[-1] == (JobEvent.Kind.CANCEL_ASKED, "by alice")

    steps = []

    def work():  # three steps, with a stop point before each
        for step in range(3):
            cancel.stop_if_cancelled()
            steps.append(step)

    assert attempt(job, work) is None
    job.refresh_from_db()
    assert steps == []
    assert job.state == Job.State.CANCELLED and job.claimed_by == ""
    assert timeline(job)[-1] == (JobEvent.Kind.CANCELLED, "by alice")


def test_a_stop_point_outside_a_job_or_of_a_job_not_cancelled_lets_the_work_go_on():
    cancel.stop_if_cancelled()  # the plain function called by a test or a shell
    make_job(Job.State.QUEUED)
    claim()
    with running():
        cancel.stop_if_cancelled()


def test_cancelling_a_finished_job_changes_nothing():
    job = make_job(Job.State.SUCCEEDED, outcome={"sent": 1})
    assert cancel.cancel(job.pk, by="alice") == Job.State.SUCCEEDED
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.cancelled_by == ""
    assert timeline(job) == []


def test_a_job_asked_to_stop_whose_worker_died_is_ended_by_the_next_copy_not_run():
    make_job(Job.State.QUEUED)
    job = claim().job
    cancel.cancel(job.pk, by="alice")
    # Its worker is killed before the next stop point: the lease runs out (or the holder is
    # found dead), and the redelivered message is taken.
    Job.objects.filter(pk=job.pk).update(claim_expires_at=timezone.now())
    again = claim()
    assert not again.got_it and again.cancelled
    assert again.job.attempts == 1, "the job was not run a second time"
    assert timeline(job)[-1] == (
        JobEvent.Kind.CANCELLED,
        "by alice; its attempt ended before stopping",
    )


def test_a_second_copy_while_the_attempt_still_runs_waits_and_does_not_end_it():
    make_job(Job.State.QUEUED)
    job = claim().job
    cancel.cancel(job.pk, by="alice")
    other = claim()  # the lease is live: the running attempt will reach its stop point
    assert not other.got_it and not other.cancelled
    assert Job.objects.get(pk=job.pk).state == Job.State.STARTED


def test_a_revoke_seen_by_a_worker_ends_the_job_like_a_cancel():
    job = make_job(Job.State.QUEUED)
    assert cancel.record_revoke(KEY, terminated=False, expired=False) == Job.State.CANCELLED
    assert "revoke" in Job.objects.get(pk=job.pk).cancelled_by
    assert cancel.record_revoke("no-such-task", terminated=False, expired=False) is None


def test_a_revoke_that_terminated_the_running_attempt_ends_it_at_once():
    make_job(Job.State.QUEUED)
    job = claim().job
    assert cancel.record_revoke(KEY, terminated=True, expired=False) == Job.State.CANCELLED
    assert Job.objects.get(pk=job.pk).state == Job.State.CANCELLED


def test_staff_cancel_from_the_admin_page_and_from_the_list(admin_client):
    job = make_job(Job.State.QUEUED)
    response = admin_client.post(reverse("admin:jobs_job_cancel", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.state, job.cancelled_by) == (Job.State.CANCELLED, "admin")
    page = admin_client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()
    assert "Cancel this job" not in page, "a finished job offers no cancel"

    others = [
        Job.objects.create(key=f"k:{n}", kind="k", task_name="t", task_id=f"t{n}", state=state)
        for n, state in enumerate([Job.State.RETRYING, Job.State.SUCCEEDED])
    ]
    admin_client.post(
        reverse("admin:jobs_job_changelist"),
        {"action": "cancel_selected", "_selected_action": [o.pk for o in others]},
    )
    states = dict(Job.objects.filter(key__startswith="k:").values_list("key", "state"))
    assert states == {"k:0": Job.State.CANCELLED, "k:1": Job.State.SUCCEEDED}


def test_cancel_needs_a_post_from_staff(client):
    job = make_job(Job.State.QUEUED)
    assert admin_get_refused(client, job)
    assert Job.objects.get(pk=job.pk).state == Job.State.QUEUED


def admin_get_refused(client, job):
    response = client.post(reverse("admin:jobs_job_cancel", args=[job.pk]))
    return response.status_code == 302 and "/login/" in response["Location"]


# --- Stop points of the long jobs -------------------------------------------------------------


def test_a_cancelled_report_stops_between_chunks_and_keeps_no_file(media_root, monkeypatch):
    mug = Product.objects.create(name="Mug", slug="mug", price=Decimal("12.50"))
    day = date(2026, 3, 2)
    for _ in range(30):
        order = Order.objects.create(customer_name="Ada", email="ada@example.com")
        placed = datetime.combine(day, time(12), tzinfo=timezone.get_current_timezone())
        Order.objects.filter(pk=order.pk).update(created_at=placed)
        OrderLine.objects.bulk_create([OrderLine.of(mug, 1, order=order)])
    report = SalesReport.objects.create(date_from=day, date_to=day)
    chunks_read = []
    real_chunks = reports.order_lines_in_chunks

    def chunks_and_a_cancel(start, end, chunk_size):
        for chunk in real_chunks(start, end, 5):
            chunks_read.append(chunk)
            if len(chunks_read) == 2:  # staff press "cancel" while the report is half done
                cancel.cancel(Job.objects.get(kind="sales_report").pk, by="alice")
            yield chunk

    monkeypatch.setattr(reports, "order_lines_in_chunks", chunks_and_a_cancel)
    build_sales_report.apply(args=[report.pk])

    report.refresh_from_db()
    assert len(chunks_read) == 2, "it stopped at the next chunk, not at the end"
    assert report.state == SalesReport.State.CANCELLED and report.error == "cancelled by alice"
    assert not report.csv_file, "no half report is kept"
    assert not [path for path in media_root.rglob("*") if path.is_file()]
    assert Job.objects.get(kind="sales_report").state == Job.State.CANCELLED


class PagesThatCancel:
    """A supplier site client whose third page request comes after staff cancelled the run."""

    pages = []

    def __init__(self, base_url):
        self.base_url = base_url

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read_robots(self):
        pass

    def allowed(self, url):
        return True

    def get(self, url):
        PagesThatCancel.pages.append(url)
        if len(PagesThatCancel.pages) == 2:
            run = FetchRun.objects.get()
            cancel.cancel(run.job_id, by="alice")
        raise scraping.PageFailed(f"{url}: gone", status=404)


def test_a_cancelled_supplier_fetch_stops_between_pages_and_keeps_the_pages_done():
    supplier = Supplier.objects.create(name="Acme", base_url="http://127.0.0.1:9")
    for n in range(5):
        product = Product.objects.create(name=f"P{n}", slug=f"p{n}", price=Decimal("1.00"))
        SupplierListing.objects.create(supplier=supplier, product=product, path=f"/p/{n}")
    job = make_job(Job.State.QUEUED, kind="supplier_prices")
    run = FetchRun.objects.create(supplier=supplier, job=job)
    PagesThatCancel.pages = []

    def work():
        return scraping.run_fetch(run.pk, client_class=PagesThatCancel)

    attempt(claim().job, work)

    assert len(PagesThatCancel.pages) == 2, "no page was fetched after the cancel"
    assert run.pages.filter(outcome=PageResult.Outcome.FAILED).count() == 2, "pages done are kept"
    assert Job.objects.get(pk=job.pk).state == Job.State.CANCELLED

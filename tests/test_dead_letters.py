"""Dead letters staff can act on: see why, replay (never twice), discard."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from jobs import deadletters
from jobs.models import Job
from notifications.tasks import send_order_confirmation
from testkit import rabbitmq
from testkit.processes import wait_for
from tests.conftest import BROKER_URL, MANAGEMENT_API, TEST_VHOST, use_broker
from tests.flows import checkout, confirmation_job, wait_for_job_state

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def dead_confirmation(client, broker, smtp_sink, start_worker, product):
    """An order whose confirmation the mail server refused for good, parked in emails.dead."""
    smtp_sink.set(reject_next=1)
    worker = start_worker()
    order = checkout(client, product)
    wait_for_job_state(order, Job.State.FAILED)
    wait_for(lambda: broker.peek("emails.dead"), message="the dead letter")
    return order, worker


def test_staff_see_each_dead_letter_with_its_reason_and_history(dead_confirmation, staff_client):
    order, _ = dead_confirmation
    job = confirmation_job(order)
    [letter] = deadletters.read("emails.dead")
    assert letter.id == job.task_id
    assert letter.task == "notifications.send_order_confirmation"
    assert str(order.pk) in letter.arguments
    assert "550" in letter.reason
    assert letter.deaths[0]["queue"] == "emails" and letter.deaths[0]["reason"] == "rejected"
    assert letter.first_failed_at is not None

    page = staff_client.get(reverse("admin:jobs_dead_letters")).content.decode()
    assert job.task_id in page and "550" in page and "emails.dead" in page
    assert deadletters.depths()["emails.dead"] == 1, "reading leaves the message in place"


def test_the_dead_letter_page_is_for_staff_only(client, broker):
    response = client.get(reverse("admin:jobs_dead_letters"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_replayed_job_runs_once_however_often_it_is_replayed(
    dead_confirmation, broker, smtp_sink
):
    order, _ = dead_confirmation
    job = confirmation_job(order)
    # A second copy of the same message dies too: the same job is in emails.dead twice.
    smtp_sink.set(reject_next=1)
    send_order_confirmation.apply_async(args=[order.pk], task_id=job.task_id)
    wait_for(lambda: len(broker.peek("emails.dead")) == 2, message="two dead copies")

    out = io.StringIO()
    call_command("deadletters", "replay", "--all", "--queue", "emails.dead", stdout=out)
    assert "2 message(s) replayed" in out.getvalue()

    job = wait_for_job_state(order, Job.State.SUCCEEDED)
    wait_for(lambda: broker.depth("emails") == 0, message="both copies consumed")
    assert len(smtp_sink.messages()) == 1
    # The first copy's replay resets the failed job; the second finds it on its way already.
    assert job.replays == 1
    assert job.attempts == 1, "the replay started with a fresh retry budget"
    assert broker.peek("emails.dead") == []


def test_staff_discard_a_dead_letter(dead_confirmation, broker, staff_client):
    order, _ = dead_confirmation
    job = confirmation_job(order)
    response = staff_client.post(
        reverse("admin:jobs_dead_letters_act"),
        {"queue": "emails.dead", "id": job.task_id, "action": "discard"},
    )
    assert response.status_code == 302
    assert broker.peek("emails.dead") == []
    assert confirmation_job(order).state == Job.State.FAILED


def test_the_command_lists_dead_letters_and_refuses_nonsense(dead_confirmation):
    order, _ = dead_confirmation
    out = io.StringIO()
    call_command("deadletters", "list", stdout=out)
    assert confirmation_job(order).task_id in out.getvalue()
    assert "emails.dead: 1 message(s)" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("deadletters", "list", "--queue", "emails")
    with pytest.raises(CommandError):
        call_command("deadletters", "replay")  # neither ids nor --all
    with pytest.raises(CommandError, match="only 0 of 1"):
        call_command("deadletters", "discard", "no-such-id", stdout=io.StringIO())


@pytest.fixture
def empty_vhost(rabbitmq_vhost):
    """A vhost where no worker has started: no queue declared at all."""
    api = rabbitmq.ManagementAPI(BROKER_URL, MANAGEMENT_API)
    name = f"{TEST_VHOST}_empty"
    api.recreate_vhost(name)
    use_broker(rabbitmq.with_vhost(BROKER_URL, name))
    try:
        yield name
    finally:
        use_broker(rabbitmq_vhost.proxied_url)
        api.delete_vhost(name)


def test_dead_letters_on_a_broker_no_worker_has_started_on_say_so(empty_vhost, staff_client):
    out = io.StringIO()
    call_command("deadletters", "list", stdout=out)
    assert "emails.dead: not declared yet (no worker has started on this broker)" in out.getvalue()
    page = staff_client.get(reverse("admin:jobs_dead_letters"))
    assert page.status_code == 200
    assert "not declared yet" in page.content.decode()

"""Security: production passes the deploy check, forms need CSRF, Flower needs a login."""

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.test import Client
from django.urls import reverse

from jobs.models import Job
from testkit.faults import free_port
from testkit.processes import ROOT, Flower, wait_for
from tests.flows import checkout, wait_for_job_state

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "shop.example.com",
}


def manage(*args, **env):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_pass_the_deploy_check():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_its_secrets():
    result = manage("check", **{**PRODUCTION, "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.django_db
def test_every_form_post_needs_the_csrf_token(product):
    client = Client(enforce_csrf_checks=True)
    assert (
        client.post(reverse("shop:cart_add", args=[product.pk]), {"quantity": 1}).status_code == 403
    )
    assert client.post(reverse("shop:checkout"), {}).status_code == 403
    assert (
        client.post(reverse("admin:login"), {"username": "x", "password": "y"}).status_code == 403
    )


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_flower_needs_a_login_and_then_lists_the_confirmation_task(
    client, broker, smtp_sink, service_env, start_worker, product, tmp_path
):
    flower = Flower(free_port(), service_env, tmp_path / "flower.log").start()
    try:
        assert flower.get("/api/tasks", auth=False)[0] == 401
        assert flower.get("/", auth=False)[0] == 401

        # A worker as the Procfile starts it, task events off: Flower turns them on.
        flower.wait_until_it_hears_from(start_worker())
        order = checkout(client, product)
        job = wait_for_job_state(order, Job.State.SUCCEEDED)

        def listed_as_ended():
            # The job's row says done before the worker's task-succeeded event reaches
            # Flower: wait for Flower to hear of the end, whichever it is.
            status, body = flower.get("/api/tasks")
            task = status == 200 and json.loads(body).get(job.task_id)
            return task and task["state"] not in ("RECEIVED", "STARTED") and task

        task = wait_for(listed_as_ended, timeout=20, message="Flower to list the task as ended")
        assert task["name"] == "notifications.send_order_confirmation"
        assert task["state"] == "SUCCESS"
    finally:
        flower.stop()


@pytest.mark.django_db
def test_uploads_are_stored_and_served_under_a_content_type_we_chose(product, media_root, rf):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.views.static import serve

    from media_jobs import services
    from tests import hostile_files

    # A real JPEG whose uploader called it a web page.
    upload = SimpleUploadedFile("evil.html", hostile_files.jpeg((400, 300)), "text/html")
    image = services.attach_image(product, upload)

    name = image.original.name
    assert name.startswith("originals/") and name.endswith(".jpg"), name
    assert "evil" not in name
    response = serve(rf.get("/"), name, document_root=media_root)
    assert response["Content-Type"] == "image/jpeg"

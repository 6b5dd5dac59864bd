"""Flower, behind its login, lists the confirmation task of an order."""

import base64

import pytest

from jobs.models import Job
from shop import services
from shop.models import Product
from testkit.faults import free_port
from testkit.processes import Flower, wait_for
from tests.browser.steps import PlaywrightError, expect
from tests.flows import wait_for_job_state

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def flower(shop_env, worker, tmp_path):
    """Flower on the test vhost, with basic auth, as the Procfile starts it."""
    _, env = shop_env
    flower = Flower(free_port(), env, tmp_path / "flower.log").start()
    yield flower
    flower.stop()


def test_flower_opens_behind_its_login_and_lists_the_confirmation_task(
    page, flower, worker, screenshot
):
    # Without credentials: Flower answers 401 with a basic-auth challenge, and the browser,
    # with nobody to type a password, shows nothing of Flower.
    anonymous = page.request.get(flower.url + "/tasks")
    assert anonymous.status == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
        page.goto(flower.url + "/tasks")

    # With them: what the browser sends once someone has typed them into its login dialog.
    token = base64.b64encode(f"{flower.user}:{flower.password}".encode()).decode()
    page.set_extra_http_headers({"Authorization": f"Basic {token}"})
    flower.wait_until_it_hears_from(worker)

    mug = Product.objects.create(name="Blue Mug", slug="blue-mug", price="12.50")
    order = services.place_order(
        customer_name="Ada Lovelace",
        email="ada@example.com",
        shipping_address="12 Analytical Row",
        items=[(mug, 1)],
    )
    task_id = wait_for_job_state(order, Job.State.SUCCEEDED).task_id
    wait_for(
        lambda: (flower.api(f"/api/task/info/{task_id}") or {}).get("state") == "SUCCESS",
        timeout=30,
        message="Flower to have the task's success",
    )

    page.goto(flower.url + "/tasks")
    row = page.locator("#tasks-table tbody tr", has=page.locator(f'a[href$="/task/{task_id}"]'))
    expect(row).to_contain_text("notifications.send_order_confirmation")
    expect(row).to_contain_text("SUCCESS")
    row.locator(f'a[href$="/task/{task_id}"]').click()
    expect(page.locator("main")).to_contain_text(task_id)
    expect(page.locator("main")).to_contain_text(f"[{order.pk}]")
    screenshot("flower-task")

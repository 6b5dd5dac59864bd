"""Steps several browser flows take: a customer's checkout, a staff member's login."""

import re

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect
except ImportError:  # then the `chromium` fixture skips every browser test, in one line
    PlaywrightError = expect = None

# How long a page may take to show what a background job did: generous, the machine is shared.
JOB_TIMEOUT_MS = 60_000
STAFF_PASSWORD = "a-long-staff-password-for-tests"


def make_staff(django_user_model, username="clerk"):
    """A staff member who can use the staff pages and the admin."""
    return django_user_model.objects.create_superuser(
        username, f"{username}@shop-jobs.test", STAFF_PASSWORD
    )


def log_in(page, user, then):
    """Log in through the admin's login form, landing on the page at `then`."""
    page.goto(f"/admin/login/?next={then}")
    page.get_by_label("Username").fill(user.get_username())
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(re.escape(then) + "$"))


def add_to_cart(page, product_name, quantity):
    """From the catalog, open a product's page and put `quantity` of it in the cart."""
    page.goto("/")
    page.get_by_role("link", name=product_name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(product_name)
    page.get_by_label("Quantity").fill(str(quantity))
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator(".messages")).to_contain_text(f"Added {quantity} x {product_name}")


def check_out(page, name="Ada Lovelace", email="ada@example.com"):
    """From the cart, check out; returns the order's number, from the order's page."""
    page.get_by_role("link", name="Check out").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Shipping address").fill("12 Analytical Row\nLondon")
    page.get_by_role("button", name="Place order").click()
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("Order #")
    return int(re.search(r"Order #(\d+)", heading.inner_text()).group(1))


def confirmation_row(page):
    """The order page's row for the confirmation email job."""
    return page.locator(".jobs tbody tr", has_text="Confirmation email")

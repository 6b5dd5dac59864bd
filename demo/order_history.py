"""A realistic order history for the sales reports (`seed_demo --orders N`): months of orders,
written straight into the tables with bulk inserts."""

import random
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from shop.models import Order, OrderLine, Product

MAX_ORDERS = 1_000_000
HISTORY_DAYS = 180
ORDERS_PER_BATCH = 2_000
FIRST_NAMES = [
    "Ada", "Alan", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "John",
    "Radia", "Tim", "Katherine", "Guido", "Hedy", "Edsger", "Sophie", "Niklaus", "Annie", "Donald",
    "Karen", "Bjarne", "Joan", "Leslie", "Mary", "Claude", "Shafi", "Vint", "Lynn", "Yukihiro",
]  # fmt: skip
LAST_NAMES = [
    "Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie",
    "Allen", "Backus", "Perlman", "Berners-Lee", "Johnson", "van Rossum", "Lamarr", "Dijkstra",
    "Wilson", "Wirth", "Easley", "Knuth", "Sparck Jones", "Stroustrup", "Clarke", "Lamport",
    "Keller", "Shannon", "Goldwasser", "Cerf", "Conway", "Matsumoto",
]  # fmt: skip
STREETS = [
    "Analytical Row", "Harbour Lane", "Mill Street", "Station Road", "Orchard Way",
    "Bridge Street", "Church Lane", "Park Avenue", "Quarry Hill", "Willow Close",
]  # fmt: skip
CITIES = ["Bristol", "Leeds", "Norwich", "York", "Bath", "Exeter", "Durham", "Cardiff"]
CARRIERS = ["DemoPost", "Parcel Express", "Freight Co"]
# Orders per hour of the day, relative: quiet nights, a lunch bump, busy evenings.
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 9, 11, 10, 8, 8, 9, 11, 13, 15, 14, 10, 6, 3]


def seed_order_history(count, rng=None, days=HISTORY_DAYS):
    """Add `count` orders placed over the `days` days before today, 1 to 4 lines each.

    Returns how many order lines were made. The rows go straight into the tables with
    bulk_create, a batch of orders and their lines per transaction: this is history, so
    nothing goes through place_order() and no confirmation email is asked for. Orders older
    than two days are shipped, as they would be by now. Order ids follow the order of time,
    as they do for real orders.
    """
    rng = rng or random.Random(2026)
    products = list(Product.objects.filter(is_active=True).values_list("pk", "name", "price"))
    if not products:
        raise CommandError("There are no products to sell: create some first (--products).")
    # A few best sellers and a long tail.
    popularity = [1 / rank for rank in range(1, len(products) + 1)]
    moments = sorted(order_moments(count, days, rng))
    shipped_before = timezone.now() - timedelta(days=2)
    line_count = 0
    with created_at_as_given():
        for start in range(0, count, ORDERS_PER_BATCH):
            with transaction.atomic():
                orders = Order.objects.bulk_create(
                    historical_order(placed_at, shipped_before, rng)
                    for placed_at in moments[start : start + ORDERS_PER_BATCH]
                )
                lines = [
                    OrderLine(
                        order=order,
                        product_id=pk,
                        product_name=name,
                        unit_price=price,
                        quantity=rng.choices((1, 2, 3), weights=(80, 15, 5))[0],
                    )
                    for order in orders
                    for pk, name, price in basket(products, popularity, rng)
                ]
                OrderLine.objects.bulk_create(lines)
            line_count += len(lines)
    return line_count


def order_moments(count, days, rng):
    """When `count` orders were placed: busier at weekends, in the evening, on a few sale days,
    and more and more over the months as the shop grows."""
    first_day = timezone.localdate() - timedelta(days=days)
    weights = []
    for n in range(days):
        weight = (1 + n / days) * rng.uniform(0.8, 1.2)
        if (first_day + timedelta(days=n)).weekday() >= 5:
            weight *= 1.4
        if rng.random() < 0.03:
            weight *= 2.5  # a sale
        weights.append(weight)
    zone = timezone.get_current_timezone()
    for n, hour in zip(
        rng.choices(range(days), weights=weights, k=count),
        rng.choices(range(24), weights=HOUR_WEIGHTS, k=count),
        strict=True,
    ):
        day = first_day + timedelta(days=n)
        minute, second = divmod(rng.randrange(3600), 60)
        yield datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=zone)


def historical_order(placed_at, shipped_before, rng):
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email_name = f"{first}.{last}".lower().replace(" ", "")
    order = Order(
        customer_name=f"{first} {last}",
        email=f"{email_name}{rng.randrange(100)}@example.com",
        shipping_address=f"{rng.randint(1, 200)} {rng.choice(STREETS)}\n{rng.choice(CITIES)}",
        created_at=placed_at,
    )
    if placed_at < shipped_before:
        order.status = Order.Status.SHIPPED
        order.carrier = rng.choice(CARRIERS)
        order.shipped_at = placed_at + timedelta(hours=rng.randint(12, 48))
        order.tracking_number = f"{rng.randrange(10**10):010d}"
    return order


def basket(products, popularity, rng):
    """1 to 4 different products, the popular ones more often."""
    wanted = rng.choices((1, 2, 3, 4), weights=(50, 30, 14, 6))[0]
    picked = rng.choices(products, weights=popularity, k=wanted)
    return list(dict.fromkeys(picked))  # without repeats, in the order picked


@contextmanager
def created_at_as_given():
    """Let bulk_create keep the created_at we set on historical orders.

    Order.created_at is auto_now_add, which stamps every new row with the current time; a
    history placed all in the same second would be no history. Switched off for the duration.
    """
    field = Order._meta.get_field("created_at")
    field.auto_now_add = False
    try:
        yield
    finally:
        field.auto_now_add = True

"""Demo subscribers (`manage.py seed_demo --subscribers N`). Never for production."""

from django.db import transaction
from django.utils import timezone

from notifications.models import Subscriber

BATCH_SIZE = 2_000
DEMO_PREFIX, DEMO_DOMAIN = "reader", "@example.com"


def demo_email(number):
    return f"{DEMO_PREFIX}{number:06d}{DEMO_DOMAIN}"


@transaction.atomic
def seed_subscribers(count):
    """Make sure demo readers 1..`count` exist and are confirmed; returns how many were added.

    Their addresses are numbered, so running it again adds only the missing ones (and
    confirms nobody who unsubscribed: an existing row is left as it is). Bulk inserts, no
    confirmation emails: 10,000 take about a second on SQLite.
    """
    now = timezone.now()
    existing = set(
        Subscriber.objects.filter(
            email__startswith=DEMO_PREFIX, email__endswith=DEMO_DOMAIN
        ).values_list("email", flat=True)
    )
    missing = [
        Subscriber(
            email=email,
            status=Subscriber.Status.CONFIRMED,
            created_at=now,
            confirmed_at=now,
        )
        for email in map(demo_email, range(1, count + 1))
        if email not in existing
    ]
    Subscriber.objects.bulk_create(missing, batch_size=BATCH_SIZE, ignore_conflicts=True)
    return len(missing)

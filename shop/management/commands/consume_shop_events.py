"""manage.py consume_shop_events: apply the warehouse's events (shop/event_consumer.py)."""

import signal

from celery import current_app
from django.conf import settings
from django.core.management.base import BaseCommand

from shop.event_consumer import ShopEventConsumer


class Command(BaseCommand):
    help = "Consume the events the shop subscribes to (shipment.dispatched) until stopped."

    def handle(self, **options):
        connection = current_app.connection_for_read(heartbeat=settings.CELERY_BROKER_HEARTBEAT)
        consumer = ShopEventConsumer(connection)

        def stop(signum, frame):
            consumer.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        consumer.run()

"""What the worker does with messages it cannot even read."""

import logging

from celery.worker.consumer import Consumer

logger = logging.getLogger(__name__)


class DeadLetteringConsumer(Consumer):
    """Celery's consumer, but a message whose body cannot be decoded is dead-lettered.

    Celery acknowledges such a message, and it is gone for good (see BROKER-FACTS). Rejecting
    it without requeue hands it to the queue's dead-letter exchange instead, where staff can
    look at it. Messages of a content type we do not accept, for unknown tasks, or with
    arguments a task cannot take are already rejected by Celery itself.
    """

    def on_decode_error(self, message, exc):
        logger.error(
            "dead-lettering a message that cannot be decoded (%s, content type %r): %s",
            message.delivery_info.get("routing_key"),
            message.content_type,
            exc,
        )
        message.reject(requeue=False)

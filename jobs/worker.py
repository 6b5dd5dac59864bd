"""What the worker does with messages it cannot even read: park them, never die of them."""

import logging

from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import TimeLimitExceeded
from celery.worker.consumer import Consumer
from celery.worker.request import Request

logger = logging.getLogger(__name__)


class DeadLetteringConsumer(Consumer):
    """Celery's consumer, hardened against malformed messages.

    Celery already rejects a message of a content type we do not accept, for an unknown task,
    or with arguments its task cannot take, and rejected messages are dead-lettered. Two kinds
    of bad input are handled worse, as measured (docs/measured-behaviour.md and
    tests/test_crash_safety.py):

    - a body that cannot be decoded is acknowledged, so it is lost: here it is rejected;
    - a body that decodes but is not shaped like a task message (`{}`, an empty string)
      raises inside the consumer and stops the whole worker: here it is rejected instead.
    """

    def on_decode_error(self, message, exc):
        self._dead_letter(message, "cannot be decoded", exc)

    def create_task_handler(self, *args, **kwargs):
        handle = super().create_task_handler(*args, **kwargs)

        def on_task_received(message):
            try:
                return handle(message)
            except self.connection_errors:
                raise  # the broker is gone: the consumer reconnects, the message comes back
            except Exception as exc:
                self._dead_letter(message, "is not a well-formed task message", exc)
                return None

        return on_task_received

    def _dead_letter(self, message, problem, exc):
        logger.error(
            "dead-lettering a message from %r that %s (content type %r): %r",
            message.delivery_info.get("routing_key"),
            problem,
            message.content_type,
            exc,
        )
        if not message.acknowledged:
            message.reject_log_error(logger, self.connection_errors)


class JobRequest(Request):
    """Celery's request, except that a job killed by its hard time limit is dead-lettered.

    With late acknowledgement and task_acks_on_failure_or_timeout=False, Celery requeues a
    task that hit its hard time limit, as it is: a job that always runs too long would come
    back forever. Here it is rejected without requeue, so it lands in its dead-letter queue
    (jobs/signals.py marks the job failed).
    """

    # Billiard reports a hard time limit twice: as the task's failure, then as a timeout.
    def on_failure(self, exc_info, *args, **kwargs):
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        self._hard_timeout = isinstance(exc, TimeLimitExceeded)
        super().on_failure(exc_info, *args, **kwargs)

    def on_timeout(self, soft, timeout):
        self._hard_timeout = not soft
        super().on_timeout(soft, timeout)

    def reject(self, requeue=False):
        if getattr(self, "_hard_timeout", False):
            requeue = False
        super().reject(requeue=requeue)

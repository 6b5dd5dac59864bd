"""The two kinds of failure a job can meet, and what the job runner does with each.

Plain functions (render and send an email, make a thumbnail) raise these; they know what went
wrong, the task wrapper does not. Anything else a job raises is treated as a bug: the message is
dead-lettered for a person to look at.
"""


class TransientError(Exception):
    """Worth trying again later: a refused connection, a timeout, an SMTP 4xx answer.

    `retry_after` (seconds) is the earliest the other side will take us back, when it said so
    (an HTTP 429 or 503 with Retry-After): the next attempt waits at least that long, instead
    of spending attempts on backoff delays shorter than the wait it was asked for.
    """

    def __init__(self, *args, retry_after=None):
        super().__init__(*args)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Trying again cannot help: an SMTP 5xx for the recipient, a row that no longer exists."""

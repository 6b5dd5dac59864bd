"""The signed links of the newsletter: confirm a subscription, unsubscribe.

Both carry only the subscriber's id, signed with SECRET_KEY (django.core.signing): nothing to
store, nothing to guess, and a link changed by one character is refused. Each kind has its own
salt, so an unsubscribe link cannot be turned into a confirmation link or the other way round.

- A confirmation link expires (NEWSLETTER_CONFIRM_MAX_AGE_SECONDS): a stale link found in an
  old mailbox should not sign anyone up.
- An unsubscribe link never expires: people unsubscribe from newsletters they kept for a year,
  and it must keep working (the law and the big mailbox providers ask for that).
"""

from django.conf import settings
from django.core import signing

CONFIRM_SALT = "notifications.newsletter.confirm"
UNSUBSCRIBE_SALT = "notifications.newsletter.unsubscribe"


class BadLink(Exception):
    """The link was not made by us, or was changed on the way."""


class ExpiredLink(BadLink):
    """The link is ours but too old."""


def confirmation_token(subscriber_id):
    return signing.TimestampSigner(salt=CONFIRM_SALT).sign(str(subscriber_id))


def read_confirmation_token(token, max_age=None):
    """The subscriber id in a confirmation token; raises ExpiredLink or BadLink."""
    max_age = settings.NEWSLETTER_CONFIRM_MAX_AGE_SECONDS if max_age is None else max_age
    try:
        value = signing.TimestampSigner(salt=CONFIRM_SALT).unsign(token, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise ExpiredLink(str(exc)) from None
    except signing.BadSignature as exc:
        raise BadLink(str(exc)) from None
    return _subscriber_id(value)


def unsubscribe_token(subscriber_id):
    # No timestamp: the same link in every newsletter, valid for as long as the subscriber is.
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign(str(subscriber_id))


def read_unsubscribe_token(token):
    """The subscriber id in an unsubscribe token; raises BadLink."""
    try:
        value = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign(token)
    except signing.BadSignature as exc:
        raise BadLink(str(exc)) from None
    return _subscriber_id(value)


def _subscriber_id(value):
    # Only we sign, and we sign ids; anything else means the secret key has leaked or changed.
    if not (value.isascii() and value.isdigit()):
        raise BadLink("the signed value is not a subscriber id")
    return int(value)

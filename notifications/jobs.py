"""The kinds of job this app runs, with the words the order page uses for them."""

from jobs.kinds import JobKind

ORDER_CONFIRMATION = JobKind(
    "order_confirmation", "Confirmation email", doing="sending", done="sent"
)
SHIPPING_NOTICE = JobKind("shipping_notice", "Shipping email", doing="sending", done="sent")

# Newsletters (notifications/newsletters.py). A person who just subscribed waits for this one.
NEWSLETTER_CONFIRMATION = JobKind(
    "newsletter_confirmation", "Subscription confirmation email", doing="sending", done="sent"
)
# "Send" pressed: write one delivery row per recipient, then publish the chunks.
NEWSLETTER_SEND = JobKind(
    "newsletter_send", "Newsletter planning", doing="planning", done="planned"
)
# A chunk of NEWSLETTER_CHUNK_SIZE recipients; keyed newsletter_chunk:<newsletter>:<chunk>.
NEWSLETTER_CHUNK = JobKind("newsletter_chunk", "Newsletter chunk", doing="sending", done="sent")

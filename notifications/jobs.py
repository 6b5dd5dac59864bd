"""The kinds of job this app runs, with the words the order page uses for them."""

from jobs.kinds import JobKind

ORDER_CONFIRMATION = JobKind(
    "order_confirmation", "Confirmation email", doing="sending", done="sent"
)
SHIPPING_NOTICE = JobKind("shipping_notice", "Shipping email", doing="sending", done="sent")

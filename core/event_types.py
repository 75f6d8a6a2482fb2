"""Event types that the engine itself reads or writes.

Any other type (``page_view``, ``cart_add``, ``big_win``...) is free-form and
only means something to the rules that mention it.
"""

PURCHASE = "purchase"
LOGIN = "login"
REGISTERED = "registered"
MESSAGE_SENT = "message_sent"
MESSAGE_OPENED = "message_opened"
MESSAGE_CLICKED = "message_clicked"
MESSAGE_BOUNCED = "message_bounced"
MESSAGE_COMPLAINED = "message_complained"
UNSUBSCRIBED = "unsubscribed"

ENGINE_TYPES = (
    PURCHASE,
    LOGIN,
    REGISTERED,
    MESSAGE_SENT,
    MESSAGE_OPENED,
    MESSAGE_CLICKED,
    MESSAGE_BOUNCED,
    MESSAGE_COMPLAINED,
    UNSUBSCRIBED,
)
"""Every type above: the ones a goal may name without the program naming them elsewhere."""

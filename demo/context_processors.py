from django.conf import settings


def demo(request):
    """`demo`: templates show the demo's links and knobs (the mailbox, the controls).

    Only where the demo app is installed (this processor with it) and DEBUG is on, as the
    pages behind those links are.
    """
    return {"demo": settings.DEBUG}

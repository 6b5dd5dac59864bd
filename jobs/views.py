from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from jobs import health


def _answer(*checks):
    results = [check() for check in checks]
    down = [detail for ok, detail in results if not ok]
    body = {"status": "down" if down else "ok", "checks": [detail for _, detail in results]}
    if down:
        body["down"] = down
    return JsonResponse(body, status=503 if down else 200)


@never_cache
def healthz(request):
    """The web process and its database: for the load balancer."""
    return _answer(health.database)


@never_cache
def healthz_broker(request):
    return _answer(health.broker)


@never_cache
def healthz_workers(request):
    return _answer(health.broker, health.workers)

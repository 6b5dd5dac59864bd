"""The shop's data as the benchmarks use it: a product, orders written in bulk, finished jobs.

Django must be set up (bench/setup.py: set_up) before any of these is called: they import the
shop's models when they run.
"""

from testkit.processes import wait_for


def bench_product():
    from shop.models import Product

    return Product.objects.get_or_create(
        slug="bench-mug", defaults={"name": "Bench Mug", "price": "12.50"}
    )[0]


def make_orders(count):
    """`count` placed orders of one line each, written in bulk; returns their ids."""
    from shop.models import Order, OrderLine

    product = bench_product()
    orders = Order.objects.bulk_create(
        (
            Order(
                customer_name=f"Customer {i}", email=f"c{i}@example.com", shipping_address="1 Road"
            )
            for i in range(count)
        ),
        batch_size=1000,
    )
    OrderLine.objects.bulk_create(
        (
            OrderLine(
                order=o,
                product=product,
                product_name=product.name,
                unit_price=product.price,
                quantity=1,
            )
            for o in orders
        ),
        batch_size=1000,
    )
    return [o.pk for o in orders]


def wait_for_jobs(keys, timeout=600):
    """Wait until every job of `keys` has finished; returns [Job]. A failed one is an error."""
    from jobs.models import Job

    def finished():
        jobs = list(Job.objects.filter(key__in=keys, state__in=Job.FINAL_STATES))
        return jobs if len(jobs) == len(keys) else None

    # Polled gently: the figures come from the jobs' own finished_at, not from noticing it.
    jobs = wait_for(finished, timeout, interval=0.25, message=f"{len(keys)} jobs to finish")
    failed = [job for job in jobs if job.state != Job.State.SUCCEEDED]
    if failed:
        raise RuntimeError(f"{len(failed)} job(s) failed, e.g. {failed[0].last_error!r}")
    return jobs


def seconds_until_last_finished(jobs, since):
    """From `since` (epoch seconds) to the moment the last of `jobs` was marked done."""
    return max(job.finished_at.timestamp() for job in jobs) - since

"""Fill a demo database: a catalog with pictures and a staff login. Never for production."""

import os
import secrets
import time
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify

from demo.catalog import CATALOG, product_picture
from demo.order_history import HISTORY_DAYS, MAX_ORDERS, seed_order_history
from demo.subscribers import seed_subscribers
from demo.suppliers import seed_demo_supplier
from media_jobs.services import attach_image
from shop.models import Order, Product

MAX_PRODUCTS = 500
STAFF_USERNAME = "staff"
# Enough newsletter readers for the fan-out to take a while (demo/subscribers.py).
DEMO_SUBSCRIBERS = 10_000
MAX_SUBSCRIBERS = 1_000_000


class Command(BaseCommand):
    help = (
        "Create demo products with pictures, a staff user and newsletter subscribers "
        "(DEBUG only, idempotent)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--products",
            type=int,
            default=len(CATALOG),
            help=f"how many products to create or update (default {len(CATALOG)})",
        )
        parser.add_argument(
            "--orders",
            type=int,
            default=0,
            help=f"top the order history up to this many orders, placed over the past "
            f"{HISTORY_DAYS} days (bulk inserts: 100,000 take seconds; no emails are sent)",
        )
        parser.add_argument(
            "--subscribers",
            type=int,
            default=DEMO_SUBSCRIBERS,
            help=f"confirmed newsletter subscribers to have (default {DEMO_SUBSCRIBERS:,}; "
            "bulk inserts, no emails are sent)",
        )

    def handle(self, *args, products, **options):
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo is for demo databases only: it refuses to run with DEBUG off."
            )
        if not 0 <= products <= MAX_PRODUCTS:
            raise CommandError(f"--products must be between 0 and {MAX_PRODUCTS}")
        if not 0 <= options["orders"] <= MAX_ORDERS:
            raise CommandError(f"--orders must be between 0 and {MAX_ORDERS}")
        if not 0 <= options["subscribers"] <= MAX_SUBSCRIBERS:
            raise CommandError(f"--subscribers must be between 0 and {MAX_SUBSCRIBERS}")

        with transaction.atomic():
            created = 0
            for index in range(products):
                created += self.seed_product(index)
            # The demo supplier's pages on the local supplier site (`manage.py supplier_site`).
            supplier = seed_demo_supplier(Product.objects.all())
            password = self.seed_staff()

        self.stdout.write(self.style.SUCCESS(f"{products} demo products ready ({created} new)."))
        self.stdout.write(f"{supplier}: {supplier.listings.count()} pages followed.")
        self.stdout.write(f"Staff login: {STAFF_USERNAME} / {password}")
        if options["orders"]:
            self.seed_orders(options["orders"])
        if options["subscribers"]:
            self.seed_subscribers(options["subscribers"])

    def seed_subscribers(self, wanted):
        started = time.monotonic()
        added = seed_subscribers(wanted)
        self.stdout.write(
            self.style.SUCCESS(
                f"{wanted:,} demo newsletter subscribers ready ({added:,} new) "
                f"in {time.monotonic() - started:.1f} s."
            )
        )

    def seed_product(self, index):
        name, description, price = CATALOG[index % len(CATALOG)]
        if index >= len(CATALOG):
            name = f"{name} No. {index // len(CATALOG) + 1}"
        product, created = Product.objects.update_or_create(
            slug=slugify(name),
            defaults={
                "name": name,
                "description": description,
                "price": Decimal(price),
                "is_active": True,
            },
        )
        # A picture is only drawn for a product that has none, and attached like a staff upload:
        # its renditions are made by the media worker. The file is named after its content, so
        # the picture of an earlier demo database is found and used again: running this any
        # number of times leaves no duplicate files behind.
        if not product.images.exists():
            picture = ContentFile(product_picture(name, index), name=f"{product.slug}.jpg")
            attach_image(product, picture)
        return int(created)

    def seed_orders(self, wanted):
        missing = wanted - Order.objects.count()
        if missing <= 0:
            self.stdout.write(f"{wanted:,} orders wanted, the shop has them already.")
            return
        started = time.monotonic()
        lines = seed_order_history(missing)
        self.stdout.write(
            self.style.SUCCESS(
                f"{missing:,} orders of history added ({lines:,} lines) "
                f"in {time.monotonic() - started:.1f} s."
            )
        )

    def seed_staff(self):
        password = os.environ.get("DEMO_STAFF_PASSWORD") or secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=STAFF_USERNAME)
        user.is_staff = True
        user.is_superuser = True
        user.is_active = True
        user.set_password(password)
        user.save()
        return password

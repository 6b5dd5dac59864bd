"""Fill a demo database: a catalog with pictures and a staff login. Never for production."""

import colorsys
import io
import os
import random
import secrets
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from PIL import Image, ImageDraw, ImageFont

from media_jobs.services import attach_image
from notifications.demo import seed_subscribers
from shop.models import Order, OrderLine, Product
from suppliers.demo import seed_demo_supplier

IMAGE_SIZE = 800
MAX_PRODUCTS = 500
STAFF_USERNAME = "staff"
# Enough newsletter readers for the fan-out to take a while (notifications/demo.py).
DEMO_SUBSCRIBERS = 10_000
MAX_SUBSCRIBERS = 1_000_000

# name, description, price
CATALOG = [
    ("Ceramic Pour-Over Dripper", "Hand-glazed stoneware dripper for one or two cups.", "24.00"),
    ("Stoneware Coffee Mug", "A heavy 350 ml mug that keeps coffee warm.", "14.50"),
    ("Linen Tea Towel", "Washed linen, soft from day one and quick to dry.", "12.00"),
    ("Walnut Cutting Board", "End-grain walnut board, oiled and ready to use.", "68.00"),
    ("Cast Iron Skillet", "A 26 cm skillet, pre-seasoned, for a lifetime of use.", "45.00"),
    ("Chef's Knife 20 cm", "High-carbon stainless steel blade with an oak handle.", "89.00"),
    ("Glass Storage Jar Set", "Three airtight borosilicate jars for the pantry.", "29.90"),
    ("Bamboo Utensil Set", "Spatula, spoon and tongs in sustainably grown bamboo.", "18.00"),
    ("Wool Throw Blanket", "A warm merino throw woven in a herringbone pattern.", "110.00"),
    ("Scented Soy Candle", "Cedar and bergamot, about 45 hours of burn time.", "22.00"),
    ("Desk Lamp", "Adjustable aluminium lamp with a warm dimmable LED.", "79.00"),
    ("Notebook A5 Dotted", "160 pages of 100 g paper that fountain pens love.", "16.00"),
    ("Fountain Pen", "A steel nib pen that writes smoothly from the first line.", "38.00"),
    ("Canvas Tote Bag", "Heavy cotton canvas with an inner pocket.", "19.00"),
    ("Leather Card Holder", "Vegetable-tanned leather, holds six cards.", "34.00"),
    ("Stainless Water Bottle", "Double-walled, keeps drinks cold for 24 hours.", "27.00"),
    ("Ceramic Plant Pot", "A matte pot with a drainage hole and a saucer.", "21.00"),
    ("Indoor Herb Kit", "Basil, parsley and chives, seeds and soil included.", "25.00"),
    ("Cotton Bath Towel", "Thick organic cotton terry, 70 x 140 cm.", "32.00"),
    ("Wooden Wall Clock", "A quiet sweep movement in a birch frame.", "54.00"),
    ("Wireless Speaker", "Small, loud enough for a kitchen, 12 hours per charge.", "99.00"),
    ("Yoga Mat", "Natural rubber mat with a grippy, washable surface.", "58.00"),
    ("Puzzle 1000 Pieces", "A mountain lake at dawn, printed on thick board.", "26.00"),
    ("Espresso Cups, Set of 4", "Porcelain cups of 80 ml with matching saucers.", "36.00"),
]


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


def product_picture(name, seed):
    """A JPEG of IMAGE_SIZE square: a soft two-colour gradient, a few shapes and the name."""
    rng = random.Random(seed)
    hue = rng.random()
    top = _rgb(hue, 0.55, 0.92)
    bottom = _rgb((hue + 0.12) % 1, 0.65, 0.62)
    size = (IMAGE_SIZE, IMAGE_SIZE)

    mask = Image.linear_gradient("L").resize(size)
    image = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)

    shapes = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(shapes)
    for _ in range(5):
        radius = rng.randint(80, 260)
        x, y = rng.randint(0, IMAGE_SIZE), rng.randint(0, IMAGE_SIZE)
        fill = (255, 255, 255, rng.randint(25, 60))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)
    image = Image.alpha_composite(image.convert("RGBA"), shapes).convert("RGB")

    draw = ImageDraw.Draw(image)
    font = _font(56)
    lines = _wrap(draw, name, font, IMAGE_SIZE - 160)
    line_height = 70
    y = IMAGE_SIZE - 120 - line_height * len(lines)
    draw.rounded_rectangle(
        (60, y - 30, IMAGE_SIZE - 60, IMAGE_SIZE - 90), radius=28, fill=(255, 255, 255)
    )
    for line in lines:
        width = draw.textlength(line, font=font)
        draw.text(((IMAGE_SIZE - width) / 2, y), line, font=font, fill=(31, 36, 48))
        y += line_height

    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()


def _rgb(hue, saturation, value):
    return tuple(round(c * 255) for c in colorsys.hsv_to_rgb(hue, saturation, value))


def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or built without FreeType
        return ImageFont.load_default()


def _wrap(draw, text, font, max_width):
    lines, current = [], ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and draw.textlength(candidate, font=font) > max_width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


# --- Order history (--orders) -------------------------------------------------------------------
# Enough history for the sales reports to have something to say: months of orders, written
# straight into the tables with bulk inserts.

MAX_ORDERS = 1_000_000
HISTORY_DAYS = 180
ORDERS_PER_BATCH = 2_000
FIRST_NAMES = [
    "Ada", "Alan", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "John",
    "Radia", "Tim", "Katherine", "Guido", "Hedy", "Edsger", "Sophie", "Niklaus", "Annie", "Donald",
    "Karen", "Bjarne", "Joan", "Leslie", "Mary", "Claude", "Shafi", "Vint", "Lynn", "Yukihiro",
]  # fmt: skip
LAST_NAMES = [
    "Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie",
    "Allen", "Backus", "Perlman", "Berners-Lee", "Johnson", "van Rossum", "Lamarr", "Dijkstra",
    "Wilson", "Wirth", "Easley", "Knuth", "Sparck Jones", "Stroustrup", "Clarke", "Lamport",
    "Keller", "Shannon", "Goldwasser", "Cerf", "Conway", "Matsumoto",
]  # fmt: skip
STREETS = [
    "Analytical Row", "Harbour Lane", "Mill Street", "Station Road", "Orchard Way",
    "Bridge Street", "Church Lane", "Park Avenue", "Quarry Hill", "Willow Close",
]  # fmt: skip
CITIES = ["Bristol", "Leeds", "Norwich", "York", "Bath", "Exeter", "Durham", "Cardiff"]
CARRIERS = ["DemoPost", "Parcel Express", "Freight Co"]
# Orders per hour of the day, relative: quiet nights, a lunch bump, busy evenings.
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 9, 11, 10, 8, 8, 9, 11, 13, 15, 14, 10, 6, 3]


def seed_order_history(count, rng=None, days=HISTORY_DAYS):
    """Add `count` orders placed over the `days` days before today, 1 to 4 lines each.

    Returns how many order lines were made. The rows go straight into the tables with
    bulk_create, a batch of orders and their lines per transaction: this is history, so
    nothing goes through place_order() and no confirmation email is asked for. Orders older
    than two days are shipped, as they would be by now. Order ids follow the order of time,
    as they do for real orders.
    """
    rng = rng or random.Random(2026)
    products = list(Product.objects.filter(is_active=True).values_list("pk", "name", "price"))
    if not products:
        raise CommandError("There are no products to sell: create some first (--products).")
    # A few best sellers and a long tail.
    popularity = [1 / rank for rank in range(1, len(products) + 1)]
    moments = sorted(order_moments(count, days, rng))
    shipped_before = timezone.now() - timedelta(days=2)
    line_count = 0
    with created_at_as_given():
        for start in range(0, count, ORDERS_PER_BATCH):
            with transaction.atomic():
                orders = Order.objects.bulk_create(
                    historical_order(placed_at, shipped_before, rng)
                    for placed_at in moments[start : start + ORDERS_PER_BATCH]
                )
                lines = [
                    OrderLine(
                        order=order,
                        product_id=pk,
                        product_name=name,
                        unit_price=price,
                        quantity=rng.choices((1, 2, 3), weights=(80, 15, 5))[0],
                    )
                    for order in orders
                    for pk, name, price in basket(products, popularity, rng)
                ]
                OrderLine.objects.bulk_create(lines)
            line_count += len(lines)
    return line_count


def order_moments(count, days, rng):
    """When `count` orders were placed: busier at weekends, in the evening, on a few sale days,
    and more and more over the months as the shop grows."""
    first_day = timezone.localdate() - timedelta(days=days)
    weights = []
    for n in range(days):
        weight = (1 + n / days) * rng.uniform(0.8, 1.2)
        if (first_day + timedelta(days=n)).weekday() >= 5:
            weight *= 1.4
        if rng.random() < 0.03:
            weight *= 2.5  # a sale
        weights.append(weight)
    zone = timezone.get_current_timezone()
    for n, hour in zip(
        rng.choices(range(days), weights=weights, k=count),
        rng.choices(range(24), weights=HOUR_WEIGHTS, k=count),
        strict=True,
    ):
        day = first_day + timedelta(days=n)
        minute, second = divmod(rng.randrange(3600), 60)
        yield datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=zone)


def historical_order(placed_at, shipped_before, rng):
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email_name = f"{first}.{last}".lower().replace(" ", "")
    order = Order(
        customer_name=f"{first} {last}",
        email=f"{email_name}{rng.randrange(100)}@example.com",
        shipping_address=f"{rng.randint(1, 200)} {rng.choice(STREETS)}\n{rng.choice(CITIES)}",
        created_at=placed_at,
    )
    if placed_at < shipped_before:
        order.status = Order.Status.SHIPPED
        order.carrier = rng.choice(CARRIERS)
        order.shipped_at = placed_at + timedelta(hours=rng.randint(12, 48))
        order.tracking_number = f"{rng.randrange(10**10):010d}"
    return order


def basket(products, popularity, rng):
    """1 to 4 different products, the popular ones more often."""
    wanted = rng.choices((1, 2, 3, 4), weights=(50, 30, 14, 6))[0]
    picked = rng.choices(products, weights=popularity, k=wanted)
    return list(dict.fromkeys(picked))  # without repeats, in the order picked


@contextmanager
def created_at_as_given():
    """Let bulk_create keep the created_at we set on historical orders.

    Order.created_at is auto_now_add, which stamps every new row with the current time; a
    history placed all in the same second would be no history. Switched off for the duration.
    """
    field = Order._meta.get_field("created_at")
    field.auto_now_add = False
    try:
        yield
    finally:
        field.auto_now_add = True

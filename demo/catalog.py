"""The demo's catalog: products with their descriptions and prices, and a picture for each,
drawn here (no image files in the repository)."""

import colorsys
import io
import random

from PIL import Image, ImageDraw, ImageFont

IMAGE_SIZE = 800

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

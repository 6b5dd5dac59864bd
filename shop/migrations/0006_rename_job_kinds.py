"""Job kinds named like their tasks: the task's name without its app and its leading verb."""

from django.db import migrations

from jobs.kinds import renamed_kind


class Migration(migrations.Migration):
    dependencies = [("shop", "0005_product_stock"), ("jobs", "0003_job_events")]

    operations = [
        renamed_kind("order_placed_event", "order_placed"),
    ]

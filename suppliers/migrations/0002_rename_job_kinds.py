"""Job kinds named like their tasks: the task's name without its app and its leading verb."""

from django.db import migrations

from jobs.kinds import renamed_kind


class Migration(migrations.Migration):
    dependencies = [("suppliers", "0001_initial"), ("jobs", "0003_job_events")]

    operations = [
        renamed_kind("supplier_fetch", "supplier_prices"),
    ]

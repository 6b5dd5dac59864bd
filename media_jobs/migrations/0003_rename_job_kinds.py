"""Job kinds named like their tasks: the task's name without its app and its leading verb."""

from django.db import migrations

from jobs.kinds import renamed_kind


class Migration(migrations.Migration):
    dependencies = [("media_jobs", "0002_productvideo"), ("jobs", "0003_job_events")]

    operations = [
        renamed_kind("video", "poster_and_preview"),
    ]

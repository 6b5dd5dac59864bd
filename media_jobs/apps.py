from django.apps import AppConfig


class MediaJobsConfig(AppConfig):
    """Image renditions and other media work (thumbnails arrive with the staff-operations work)."""

    name = "media_jobs"
    verbose_name = "Media jobs"

from django.apps import AppConfig


class MediaJobsConfig(AppConfig):
    """Product pictures: uploads, their renditions made on the `media` queue, the staff page."""

    name = "media_jobs"
    verbose_name = "Media jobs"

from django.urls import path

from jobs import staff_views, views

app_name = "jobs"
urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("healthz/broker", views.healthz_broker, name="healthz_broker"),
    path("healthz/workers", views.healthz_workers, name="healthz_workers"),
    path("healthz/consumers", views.healthz_consumers, name="healthz_consumers"),
    path("staff/dashboard/", views.dashboard, name="dashboard"),
    path("staff/queues/<str:queue>/pause", views.queue_pause, name="queue_pause"),
    path("staff/queues/<str:queue>/resume", views.queue_resume, name="queue_resume"),
    path("metrics", views.metrics, name="metrics"),
    path("staff/jobs/", staff_views.job_list, name="job_list"),
    path("staff/jobs/bulk", staff_views.job_bulk, name="job_bulk"),
    path("staff/jobs/<int:pk>/", staff_views.job_detail, name="job_detail"),
    path("staff/jobs/<int:pk>/cancel", staff_views.job_cancel, name="job_cancel"),
    path("staff/jobs/<int:pk>/retry", staff_views.job_retry, name="job_retry"),
]

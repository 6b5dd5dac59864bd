from django.urls import path
from django.views.generic import RedirectView

from demo import views

app_name = "demo"
urlpatterns = [
    path("mailbox/", views.mailbox, name="mailbox"),
    path("mailbox/<str:key>/", views.mailbox_message, name="mailbox_message"),
    # Its old address: "outbox" is the job outbox's name alone (jobs/outbox.py).
    path("outbox/", RedirectView.as_view(pattern_name="demo:mailbox", permanent=True)),
    path("staff/demo/", views.demo_controls, name="demo_controls"),
    path("staff/suppliers/site/", views.site_controls, name="site_controls"),
]

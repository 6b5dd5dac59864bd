from django.urls import path

from notifications import views

app_name = "notifications"
urlpatterns = [
    path("", views.outbox, name="outbox"),
    path("<str:key>/", views.outbox_message, name="outbox_message"),
]

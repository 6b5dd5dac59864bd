from django.urls import path

from notifications import staff_views as views

app_name = "newsletters"
urlpatterns = [
    path("", views.newsletter_list, name="list"),
    path("<int:pk>/", views.newsletter_detail, name="detail"),
    path("<int:pk>/progress.json", views.newsletter_progress, name="progress"),
    path("<int:pk>/send/", views.newsletter_send, name="send"),
    path("<int:pk>/cancel/", views.newsletter_cancel, name="cancel"),
    path("<int:pk>/resend-in-doubt/", views.newsletter_resend_in_doubt, name="resend_in_doubt"),
]

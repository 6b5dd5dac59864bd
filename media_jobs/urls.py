from django.urls import path

from media_jobs import views

app_name = "media_jobs"
urlpatterns = [
    path("", views.pictures, name="pictures"),
    path("<int:product_id>/upload/", views.upload_picture, name="upload"),
    path("regenerate/", views.regenerate_all, name="regenerate_all"),
    path("videos/", views.videos, name="videos"),
    path("videos/<int:product_id>/upload/", views.upload_video, name="upload_video"),
]

from django.urls import path

from media_jobs import views

app_name = "media_jobs"
urlpatterns = [
    path("", views.pictures, name="pictures"),
    path("<int:product_id>/upload/", views.upload_picture, name="upload"),
    path("regenerate/", views.regenerate_all, name="regenerate_all"),
]

from django.urls import path

from suppliers import views

app_name = "suppliers"
urlpatterns = [
    path("", views.suppliers, name="suppliers"),
    path("<int:supplier_id>/fetch/", views.fetch_now, name="fetch_now"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
]

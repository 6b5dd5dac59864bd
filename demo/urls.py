from django.urls import path

from demo import views

app_name = "demo"
urlpatterns = [
    path("outbox/", views.outbox, name="outbox"),
    path("outbox/<str:key>/", views.outbox_message, name="outbox_message"),
    path("staff/demo/", views.demo_controls, name="demo_controls"),
    path("staff/suppliers/site/", views.site_controls, name="site_controls"),
]

from django.urls import path

from shop import staff_views, views

app_name = "shop"
urlpatterns = [
    path("", views.catalog, name="catalog"),
    # Browsers ask for /favicon.ico whatever the page says: no 404 on every page.
    path("favicon.ico", views.favicon, name="favicon"),
    path("products/<slug:slug>/", views.product, name="product"),
    path("cart/", views.cart_detail, name="cart"),
    path("cart/add/<int:product_id>/", views.cart_add, name="cart_add"),
    path("cart/update/<int:product_id>/", views.cart_update, name="cart_update"),
    path("cart/remove/<int:product_id>/", views.cart_remove, name="cart_remove"),
    path("checkout/", views.checkout, name="checkout"),
    path("orders/<str:token>/", views.order_status, name="order_status"),
    path("staff/orders/", staff_views.orders_to_ship, name="orders_to_ship"),
    path("staff/orders/<int:pk>/ship/", staff_views.ship_order, name="ship_order"),
]

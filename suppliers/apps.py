from django.apps import AppConfig


class SuppliersConfig(AppConfig):
    """Supplier price feeds: fetch suppliers' product pages, update the catalog's prices and
    stock, record every change; the local supplier site of the demo and the tests."""

    name = "suppliers"
    verbose_name = "Supplier price feeds"

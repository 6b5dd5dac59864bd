"""The local supplier site (`manage.py supplier_site`) as a process of the tests."""

import sys
from pathlib import Path

import httpx

from testkit.processes import ListeningProcess


class SupplierSiteProcess(ListeningProcess):
    name = "supplier site"

    def __init__(self, port, control, env, log_path):
        self.port = port
        self.control = Path(control)
        self.url = f"http://127.0.0.1:{port}/"
        args = [
            sys.executable, "manage.py", "supplier_site",
            "--port", str(port), "--control", str(control),
        ]  # fmt: skip
        super().__init__(args, env, log_path)

    def set(self, **knobs):
        from demo.supplier_site import update_controls

        update_controls(self.control, **knobs)

    def sell(self, sku, price, stock, **more):
        """Put a product on the site, or change it: its price, stock, layout, status."""
        from demo.supplier_site import set_product

        name = sku.replace("-", " ").title()
        set_product(self.control, sku, name=name, price=str(price), stock=stock, **more)

    def stats(self):
        return httpx.get(f"{self.url}_stats", timeout=5).json()

    def requests_to(self, path):
        return self.stats()["requests"].get(path, 0)

    def arrivals(self):
        """[(path, unix time)] of every request, in order of arrival."""
        return [tuple(entry) for entry in self.stats()["log"]]

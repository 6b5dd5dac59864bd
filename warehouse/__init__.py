"""The warehouse service: a separate program that talks to the shop only through RabbitMQ.

It reads `order.placed` events, reserves the stock of each order once, and some time later
publishes `shipment.dispatched` with a carrier and a tracking number. It has its own process
(`python -m warehouse`), its own SQLite database (WAREHOUSE_DB_PATH) and its own settings
(settings.py), and imports nothing of the shop, its configuration, its job plumbing, Django or
Celery: the two sides share only the event contracts in `contracts/`.
"""

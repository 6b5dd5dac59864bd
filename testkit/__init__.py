"""The real services that tests/ and bench/ run against, and the faults they play.

- rabbitmq.py: a vhost of one's own, queue depths, a peek at messages (the management API);
- rabbitmq_nodes.py: RabbitMQ 4 nodes and clusters beside the system's broker
  (`python -m testkit.rabbitmq_nodes start|stop`), and network namespaces to partition them;
- processes.py: the shop's own processes (workers, beat, the SMTP sink, Flower...) from this
  checkout, stopped for good however the run ends;
- faults.py: a TCP proxy that plays broker outages and stalls;
- monitoring.py: Prometheus and Alertmanager with the repository's configuration, on a test's
  own ports.
"""

"""Exit 0 as soon as RabbitMQ answers at URL (AMQP, or the management API for http URLs).

python scripts/wait_for_broker.py amqp://guest:guest@127.0.0.1:5672// --timeout 30
"""

import argparse
import sys
import time
import urllib.error
import urllib.request


def answers(url):
    if url.startswith("http"):
        try:
            urllib.request.urlopen(url, timeout=2)
        except urllib.error.HTTPError:
            return True  # 401 without credentials: it is up
        except OSError:
            return False
        return True
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception:
        return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, default=0, help="seconds to keep trying")
    options = parser.parse_args()
    deadline = time.monotonic() + options.timeout
    while not answers(options.url):
        if time.monotonic() >= deadline:
            return 1
        time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

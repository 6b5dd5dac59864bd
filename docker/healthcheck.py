"""Exit 0 when URL answers 2xx: the health check of the web and Flower containers.

python docker/healthcheck.py http://127.0.0.1:8000/healthz

The slim image has no curl. Django answers 400 to a Host it does not know, so the request
names the first host of ALLOWED_HOSTS (a leading dot, ".example.com", means example.com
and its subdomains; "*" allows any host).
"""

import os
import sys
import urllib.request


def host_header():
    for host in os.environ.get("ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def main(url):
    request = urllib.request.Request(url, headers={"Host": host_header()})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            print(response.status, response.read(200).decode(errors="replace"))
    except Exception as exc:  # HTTPError (503 names what is down), refused, timeout
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

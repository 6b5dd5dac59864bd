"""RabbitMQ 4 nodes for the tests and benchmarks: one node, or a cluster of three.

They run from the Debian 13 tree that scripts/ensure-rabbitmq4.sh builds, beside whatever
RabbitMQ the system has: every listener on 127.0.0.1 on ports of their own, and an epmd of
their own (ERL_EPMD_PORT), so they never meet the system's broker or its node names.

    python -m testkit.rabbitmq_nodes start    # the suite's node; prints its URLs for `env`
    python -m testkit.rabbitmq_nodes stop

A cluster (`Cluster(3).start()`) is for one test run and is deleted when it stops; the suite's
node keeps its data between runs like any installed broker (each test run has its own vhost).
`Cluster(3, network=Network(...))` runs each node as a host of its own, in a network namespace
with its own address, so that a test can cut one off from the others (a partition).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(os.environ.get("RABBITMQ4_ROOT", "/var/cache/shop-jobs/rabbitmq4-trixie"))
EPMD_PORT = 4370
# Inside the tree: where the nodes keep their data, logs and shared Erlang cookie.
NODES_DIR = "/var/lib/shop-jobs-nodes"
# The node `make test` runs the suite against, and the one its broker restart tests stop and
# start (scripts/run-tests.sh): a node of their own, so they run beside the rest.
SUITE_NODE = {"name": "shopjobs4", "amqp_port": 5673, "management_port": 15673}
RESTART_NODE = {"name": "shopjobs4r", "amqp_port": 5674, "management_port": 15674}
NODES = {"suite": SUITE_NODE, "restart": RESTART_NODE}
CLUSTER_PORTS = 5681  # node N of a cluster listens on 5680+N, 15680+N and 25680+N
CLUSTER_COOKIE = "shop-jobs-test-cluster-cookie"


class NodeError(RuntimeError):
    pass


def tree_ready():
    return (ROOT / ".ready").is_file()


def version():
    return (ROOT / ".ready").read_text().strip() if tree_ready() else None


class Node:
    """One RabbitMQ node: `name@host`, its config and data under NODES_DIR/name.

    Without `host` the node runs on this machine's loopback as `name@localhost`; with one (a
    `Host` of a `Network`) it runs in the host's network namespace, at the host's address.
    """

    def __init__(
        self, name, amqp_port, management_port, dist_port=None, cluster_with=(), host=None
    ):
        self.name = name
        self.host = host
        self.address = host.address if host else "127.0.0.1"
        self.nodename = f"{name}@{host.name if host else 'localhost'}"
        self.amqp_port = amqp_port
        self.management_port = management_port
        self.dist_port = dist_port or amqp_port + 20000
        self.cluster_with = tuple(cluster_with)
        self.home = f"{NODES_DIR}/{name}"
        self._process = None

    @property
    def netns(self):
        # The CLI runs there too: from the node's own host it reaches the node whatever
        # partition the test made.
        return self.host.netns if self.host else None

    # Paths as the node sees them (inside the tree) and as we see them (outside).
    def outside(self, path):
        return ROOT / path.lstrip("/")

    @property
    def url(self):
        return f"amqp://guest:guest@{self.address}:{self.amqp_port}//"

    @property
    def management_url(self):
        return f"http://{self.address}:{self.management_port}/api"

    @property
    def log_path(self):
        return self.outside(f"{self.home}/server.log")

    def env(self):
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            # The Erlang cookie is read from $HOME: one for all our nodes and their CLI.
            "HOME": NODES_DIR,
            "ERL_EPMD_PORT": str(EPMD_PORT),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": f"{self.home}/rabbitmq.conf",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{self.home}/advanced.config",
            "RABBITMQ_MNESIA_BASE": f"{self.home}/data",
            "RABBITMQ_LOG_BASE": f"{self.home}/log",
            "RABBITMQ_PID_FILE": f"{self.home}/node.pid",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{self.home}/enabled_plugins",
        }

    def write_config(self):
        home = self.outside(self.home)
        (home / "log").mkdir(parents=True, exist_ok=True)
        lines = [
            f"listeners.tcp.1 = {self.address}:{self.amqp_port}",
            f"management.tcp.ip = {self.address}",
            f"management.tcp.port = {self.management_port}",
            # guest may connect from anywhere: these nodes listen on loopback or on a network
            # of the test's own.
            "loopback_users = none",
            "log.file.level = info",
        ]
        if self.cluster_with:
            lines += [
                # The side of a partition that loses its majority stops serving and rejoins by
                # itself once the network heals (the default, `ignore`, stays split).
                "cluster_partition_handling = pause_minority",
                "cluster_formation.peer_discovery_backend = classic_config",
                *(
                    f"cluster_formation.classic_config.nodes.{i} = {peer}"
                    for i, peer in enumerate(self.cluster_with, 1)
                ),
            ]
        (home / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
        (home / "advanced.config").write_text(
            "[{kernel, [{inet_dist_use_interface, {"
            + self.address.replace(".", ",")
            + "}}"
            + (", {net_ticktime, 10}" if self.cluster_with else "")
            + "]}].\n"
        )
        (home / "enabled_plugins").write_text("[rabbitmq_management].\n")

    def start(self):
        if self.answers():
            return self
        self.write_config()
        write_cookie()
        log = open(self.log_path, "ab")  # noqa: SIM115 (the node's own process keeps it)
        self._process = subprocess.Popen(
            in_tree(self.env(), "/usr/lib/rabbitmq/bin/rabbitmq-server", netns=self.netns),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        return self

    def wait_ready(self, timeout=120):
        """Return once the node runs RabbitMQ (its boot steps done, listeners open)."""
        deadline = time.monotonic() + timeout
        while not self.outside(self.env()["RABBITMQ_PID_FILE"]).exists():
            self._check_alive()
            if time.monotonic() > deadline:
                raise NodeError(f"{self.nodename} wrote no pid file; see {self.log_path}")
            time.sleep(0.2)
        while not self.answers():
            self._check_alive()
            if time.monotonic() > deadline:
                raise NodeError(f"{self.nodename} did not start; see {self.log_path}")
            time.sleep(0.5)
        return self

    def _check_alive(self):
        if self._process and self._process.poll() is not None:
            raise NodeError(f"{self.nodename} exited at start; see {self.log_path}")

    def answers(self):
        try:
            self.ctl("await_startup", "--timeout", "5", timeout=15)
        except (NodeError, subprocess.TimeoutExpired):
            return False
        return True

    def ctl(self, *args, timeout=60, tool="rabbitmqctl"):
        """Run a RabbitMQ CLI command against this node; raise NodeError if it fails.

        The CLI can hang for seconds while a cluster is partitioned: its whole process group
        is killed at `timeout`.
        """
        process = subprocess.Popen(
            in_tree(
                self.env(),
                f"/usr/lib/rabbitmq/bin/{tool}",
                "-n",
                self.nodename,
                *args,
                netns=self.netns,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
        if process.returncode:
            raise NodeError(f"{tool} {' '.join(args)} on {self.nodename}: {output.strip()}")
        return output

    def os_pid(self):
        """The pid of the node's Erlang VM (what `kill -9` has to hit)."""
        path = self.outside(self.env()["RABBITMQ_PID_FILE"])
        return int(path.read_text().strip()) if path.exists() else None

    def kill(self):
        """SIGKILL the node's Erlang VM: the node dies at once, as in a power cut."""
        pid = self.os_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_gone(pid)
        self.outside(self.env()["RABBITMQ_PID_FILE"]).unlink(missing_ok=True)
        if self._process:
            self._process.wait(timeout=30)
            self._process = None

    def stop(self):
        """Stop the node cleanly if it answers; kill it if it does not."""
        try:
            self.ctl("stop", timeout=60)
        except (NodeError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def delete_data(self):
        shutil.rmtree(self.outside(self.home), ignore_errors=True)


class Cluster:
    """`size` nodes that form one cluster at start (classic peer discovery)."""

    def __init__(self, size=3, prefix="shopjobsc", first_port=CLUSTER_PORTS, network=None):
        names = [f"{prefix}{i}" for i in range(1, size + 1)]
        self.network = network
        hosts = network.hosts if network else [None] * size
        peers = [f"{n}@{h.name if h else 'localhost'}" for n, h in zip(names, hosts, strict=True)]
        self.nodes = [
            Node(name, first_port + i, first_port + 10000 + i, cluster_with=peers, host=host)
            for i, (name, host) in enumerate(zip(names, hosts, strict=True))
        ]

    @property
    def url(self):
        """Every node's URL, as Celery takes them: a client fails over to the next."""
        return ";".join(node.url for node in self.nodes)

    def node(self, nodename):
        return next(n for n in self.nodes if n.nodename == nodename)

    def start(self, timeout=180):
        if self.network:
            self.network.create()
        for node in self.nodes:
            node.delete_data()
            node.start()
        for node in self.nodes:
            node.wait_ready(timeout)
        self.wait_formed(timeout)
        return self

    def running_nodes(self, via):
        output = via.ctl("cluster_status", "--formatter", "json", timeout=30)
        return set(json.loads(output[output.index("{") :])["running_nodes"])

    def wait_formed(self, timeout=120):
        deadline = time.monotonic() + timeout
        want = {n.nodename for n in self.nodes}
        while True:
            try:
                if self.running_nodes(self.nodes[0]) == want:
                    return
            except (NodeError, subprocess.TimeoutExpired, ValueError):
                pass
            if time.monotonic() > deadline:
                raise NodeError(f"the cluster did not form; see {self.nodes[0].log_path}")
            time.sleep(0.5)

    def stop(self):
        for node in self.nodes:
            node.kill()
            node.delete_data()
        if self.network:
            self.network.delete()


class Host:
    """A host of a `Network`: a network namespace with one address on the network's bridge."""

    def __init__(self, name, address, netns, link):
        self.name = name
        self.address = address
        self.netns = netns
        self.link = link  # its cable: the bridge's end of its veth pair


class Network:
    """Hosts on one switch, each in a network namespace of its own, and this machine on it too.

    The switch is a bridge in a namespace of its own; each host, and this machine's root
    namespace, is plugged into it by a veth pair. Taking a host's cable out (`cut`) isolates
    it from every other host and from the clients here, as a failed switch port would: its
    packets are dropped, nobody gets a reset. Names resolve through the tree's /etc/hosts.
    Everything lives in namespaces this object makes, on a subnet of its own, and `delete`
    removes it all.
    """

    def __init__(self, size=3, prefix="sj", subnet="10.99.0"):
        self.prefix = prefix
        self.subnet = subnet
        self.switch = f"{prefix}-switch"
        self.hosts = [
            Host(f"{prefix}host{i}", f"{subnet}.{10 + i}", f"{prefix}-host{i}", f"{prefix}-port{i}")
            for i in range(1, size + 1)
        ]
        self.here = f"{subnet}.1"

    def create(self):
        self.delete()
        ip("netns", "add", self.switch)
        ip("-n", self.switch, "link", "add", "bridge", "type", "bridge")
        ip("-n", self.switch, "link", "set", "bridge", "up")
        # This machine (the tests, the web server, the workers) on the switch.
        self._plug(f"{self.prefix}-here", f"{self.prefix}-port0", None, self.here)
        for host in self.hosts:
            ip("netns", "add", host.netns)
            ip("-n", host.netns, "link", "set", "lo", "up")
            self._plug(f"{self.prefix}-eth", host.link, host.netns, host.address)
        hosts_file = ROOT / "etc/hosts"
        lines = [
            line
            for line in hosts_file.read_text().splitlines()
            if not line.endswith(f" # {self.prefix} test network")
        ]
        lines += [f"{h.address} {h.name} # {self.prefix} test network" for h in self.hosts]
        hosts_file.write_text("\n".join(lines) + "\n")

    def _plug(self, inside, port, netns, address):
        ip("link", "add", inside, "type", "veth", "peer", "name", port, "netns", self.switch)
        ip("-n", self.switch, "link", "set", port, "master", "bridge", "up")
        where = ["-n", netns] if netns else []
        if netns:
            ip("link", "set", inside, "netns", netns)
        ip(*where, "addr", "add", f"{address}/24", "dev", inside)
        ip(*where, "link", "set", inside, "up")

    def cut(self, host):
        ip("-n", self.switch, "link", "set", host.link, "down")

    def heal(self, host):
        ip("-n", self.switch, "link", "set", host.link, "up")

    def delete(self):
        for netns in [self.switch, *(h.netns for h in self.hosts)]:
            # What still runs there (the epmd a node started) would outlive the namespace.
            pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
            for pid in pids.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            # Deleting a namespace deletes the veth ends in it, and with them their peers.
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def in_tree(env, *command, netns=None):
    """`command` run inside the tree with exactly `env` (and in network namespace `netns`).

    Erlang reads /proc (memory use), so the tree gets one, mounted in a mount namespace of the
    command's own: it goes away with the command and is never left mounted on the machine.
    """
    return [
        *(["ip", "netns", "exec", netns] if netns else []),
        "unshare", "--mount", "--propagation", "private", "--",
        "sh", "-c", 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"', str(ROOT),
        "env", "-i", *(f"{key}={value}" for key, value in env.items()), *command,
    ]  # fmt: skip


def write_cookie():
    path = ROOT / NODES_DIR.lstrip("/") / ".erlang.cookie"
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CLUSTER_COOKIE)
    path.chmod(0o400)


def wait_gone(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise NodeError(f"process {pid} outlived SIGKILL for {timeout}s")


def suite_node():
    return Node(**SUITE_NODE)


def node_at(broker_url):
    """The node of NODES `broker_url` points at, else None (the system's broker)."""
    parts = urllib.parse.urlsplit(broker_url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        return None
    return next((Node(**n) for n in NODES.values() if n["amqp_port"] == parts.port), None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--node", choices=sorted(NODES), default="suite")
    args = parser.parse_args(argv)
    node = Node(**NODES[args.node])
    if not tree_ready():
        print(
            f"RabbitMQ 4 is not set up in {ROOT}: run scripts/ensure-rabbitmq4.sh", file=sys.stderr
        )
        return 1
    if args.command == "stop":
        node.stop()
        return 0
    if not node.answers():
        print(f"==> starting RabbitMQ {version()} ({node.nodename})", file=sys.stderr)
        node.start().wait_ready()
    # What a test run needs to use it, as `env` takes it.
    print(f"CELERY_BROKER_URL={node.url} RABBITMQ_MANAGEMENT_URL={node.management_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

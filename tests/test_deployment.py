"""Deployment: the compose file, the Procfile and the Dockerfile run only what exists here.

No Docker engine is needed. Every command line that docker/compose.yaml, the Procfile and the
Dockerfile start from this project's image is checked against the project itself: the Celery
app path, the celery subcommands and their options, the management commands and their
options, gunicorn's WSGI path and options, and the queues (every queue has a worker, every
worker's queue exists). The RabbitMQ cluster compose deploys is checked against the one
tests/test_cluster.py runs (testkit/rabbitmq_nodes.py): three nodes, one Erlang cookie, the same
cluster settings, and every client given every node and the quorum topology. Where
`docker-compose` (Debian's package) or `docker compose` is installed, the compose file is also
validated by it.
"""

import functools
import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.parse

import pytest
import yaml
from celery.app.utils import find_app
from django.core.management import get_commands, load_command_class

from config import queues
from testkit import rabbitmq_nodes
from testkit.processes import ROOT
from tests.components import missing

COMPOSE_FILE = ROOT / "docker" / "compose.yaml"
COMPOSE_SECRETS = (
    "SECRET_KEY",
    "POSTGRES_PASSWORD",
    "RABBITMQ_PASSWORD",
    "RABBITMQ_CLUSTER_COOKIE",
    "FLOWER_PASSWORD",
    "METRICS_TOKEN",
)
# What the tests put in docker/.env: compose's ${...} are filled in from these.
COMPOSE_TEST_ENV = {name: f"test-{name.lower()}" for name in COMPOSE_SECRETS}


# --- Reading the command lines ------------------------------------------------------------


def compose_commands(text):
    """(service, key, argv) for each `command` and health check `test` of compose.yaml.

    Reads the subset of YAML the file uses (the project has no YAML parser, and the point is
    to need no Docker): a command is a flow list of double-quoted strings (JSON), a block list
    of plain or quoted items, or a plain string split like a shell line. Commented-out
    services (the warehouse, until it exists) are skipped with the comments.
    """
    found, service, in_services = [], None, False
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            in_services, service = line.startswith("services:"), None
            continue
        if in_services and (m := re.match(r"^  ([a-z][a-z0-9-]*):\s*$", line)):
            service = m.group(1)
            found.append((service, "service", []))
            continue
        if service and line.strip() == "<<: *app" and line.startswith("    <<"):
            found.append((service, "app", []))
            continue
        m = re.match(r"^(\s*)(command|test):\s*(.*)$", line)
        if not (service and m):
            continue
        indent, key, value = m.groups()
        if value:
            argv = json.loads(value) if value.startswith("[") else shlex.split(value)
        else:
            argv = []
            while i < len(lines) and (item := re.match(r"^(\s*)-\s+(.*)$", lines[i])):
                if len(item.group(1)) < len(indent):
                    break
                value = item.group(2).strip()
                argv.append(json.loads(value) if value.startswith('"') else value)
                i += 1
        if key == "test":
            kind, *argv = argv
            if kind == "CMD-SHELL":
                argv = shlex.split(argv[0])
            elif kind != "CMD":
                continue
        found.append((service, key, argv))
    return found


@functools.cache
def compose():
    """{service: {"app": bool, "command": argv, "test": argv}} from docker/compose.yaml."""
    services = {}
    for service, key, argv in compose_commands(COMPOSE_FILE.read_text()):
        entry = services.setdefault(service, {"app": False})
        if key == "app":
            entry["app"] = True
        elif key != "service":
            entry[key] = argv
    return services


def procfile():
    """{process: argv} from the Procfile."""
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = shlex.split(command)
    return entries


def dockerfile_cmd():
    (cmd,) = re.findall(r"^CMD (\[.*\])$", (ROOT / "docker" / "Dockerfile").read_text(), re.M)
    return json.loads(cmd)


# --- Reading the compose file as data -----------------------------------------------------


def interpolate(value, env):
    """`value` with compose's ${NAME}, ${NAME:-default} and ${NAME:?error} filled in from `env`."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(m):
        if m.group(0) == "$$":
            return "$"
        name, operator, argument = m.group("name") or m.group("bare"), m.group("op"), m.group("arg")
        # With a colon, an empty value counts as unset.
        unset = not env.get(name) if operator and operator.startswith(":") else name not in env
        if operator in (":-", "-"):
            return argument if unset else env[name]
        if operator in (":?", "?") and unset:
            raise KeyError(f"{name}: {argument}")
        return env.get(name, "")

    pattern = r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)"
    return re.sub(pattern, substitute, value)


@functools.cache
def compose_source():
    """docker/compose.yaml as data, its ${...} as written."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


@functools.cache
def compose_services():
    """The services of docker/compose.yaml, ${...} filled in as from the tests' docker/.env."""
    return interpolate(compose_source(), COMPOSE_TEST_ENV)["services"]


def environment(service):
    env = service.get("environment") or {}
    if isinstance(env, list):  # compose also takes `- NAME=value`
        env = dict(item.split("=", 1) for item in env)
    return env


def broker_urls(service):
    """{variable: value} of a service's AMQP broker URLs (CELERY_BROKER_URL, WAREHOUSE_...)."""
    return {k: v for k, v in environment(service).items() if k.endswith("_BROKER_URL")}


def rabbitmq_node_services(services):
    """{service: definition} of the RabbitMQ nodes: the services that run RabbitMQ's image."""
    return {
        name: service
        for name, service in services.items()
        if service.get("image", "").startswith("rabbitmq:")
    }


def mounts(service):
    """{target: source} of a service's volumes (a bind mount's source relative to docker/)."""
    found = {}
    for volume in service.get("volumes") or []:
        source, target, *_ = volume.split(":")
        found[target] = source
    return found


def rabbitmq_conf(text):
    """{key: value} of a rabbitmq.conf (its sysctl-like format)."""
    entries = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            entries[key.strip()] = value.strip()
    return entries


def net_ticktime(advanced_config):
    """The kernel's net_ticktime an advanced.config (Erlang terms) sets, or None."""
    terms = "\n".join(line.split("%", 1)[0] for line in advanced_config.splitlines())
    m = re.search(r"\{\s*net_ticktime\s*,\s*(\d+)\s*\}", terms)
    return int(m.group(1)) if m else None


def app_commands():
    """Every command line run from the project's own image or checkout, with where it is."""
    commands = [(f"Procfile {name}", argv) for name, argv in procfile().items()]
    commands.append(("Dockerfile CMD", dockerfile_cmd()))
    for name, service in compose().items():
        if service["app"]:
            commands += [(f"compose {name} {key}", service.get(key)) for key in ("command", "test")]
    return [(where, argv) for where, argv in commands if argv]


def option_names(args):
    return [arg.split("=", 1)[0] for arg in args if arg.startswith("--")]


def queue_names(argv):
    """The queues of a `celery worker` command line."""
    for i, arg in enumerate(argv):
        if arg in ("--queues", "-Q"):
            return argv[i + 1].split(",")
        if arg.startswith("--queues="):
            return arg.split("=", 1)[1].split(",")
    return []


def is_worker(argv):
    return argv[:1] == ["celery"] and "worker" in argv


# --- What exists in the project -----------------------------------------------------------


@functools.cache
def celery_help(app, subcommand):
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", app, subcommand, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@functools.cache
def flower_options():
    import flower.options  # noqa: F401 - defines Flower's options
    from tornado.options import options

    return {f"--{name}" for name in options._options}


@functools.cache
def gunicorn_options():
    from gunicorn.config import Config

    return {flag for setting in Config().settings.values() for flag in setting.cli or ()}


def check_celery(args, where):
    assert args[0] == "-A", f"{where}: the Celery app comes first (-A config)"
    app_path, subcommand, *rest = args[1:]
    assert type(find_app(app_path)).__name__ == "Celery", f"{where}: -A {app_path}"
    if subcommand == "flower":
        known = flower_options()
    else:
        help_text = celery_help(app_path, subcommand)
        known = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", help_text))
    if subcommand == "inspect":
        from celery.worker.control import Panel

        action = rest[0]
        assert action in Panel.meta, f"{where}: celery inspect {action} does not exist"
    for option in option_names(rest):
        assert option in known, f"{where}: celery {subcommand} has no option {option}"
    for name in queue_names(args):
        assert name in queues.WORK_QUEUE_NAMES, f"{where}: there is no queue {name!r}"


def check_manage(args, where):
    name, *rest = args
    commands = get_commands()
    assert name in commands, f"{where}: there is no management command {name!r}"
    parser = load_command_class(commands[name], name).create_parser("manage.py", name)
    for option in option_names(rest):
        assert option in parser._option_string_actions, f"{where}: {name} has no {option}"


def check_gunicorn(args, where):
    app = next(arg for arg in args if not arg.startswith("-"))
    module, _, attribute = app.partition(":")
    assert callable(getattr(importlib.import_module(module), attribute)), f"{where}: {app}"
    for option in option_names(args):
        assert option in gunicorn_options(), f"{where}: gunicorn has no option {option}"


def check_module(args, where):
    """`python -m package ...`: a package of this project that runs as a program (the warehouse
    service), given arguments its own parser (build_parser) takes."""
    name, *rest = args
    spec = importlib.util.find_spec(f"{name}.__main__")
    assert spec and spec.origin.startswith(str(ROOT)), f"{where}: {name} is not a program here"
    main = importlib.import_module(f"{name}.__main__")
    try:
        main.build_parser().parse_args(rest)
    except SystemExit:
        pytest.fail(f"{where}: python -m {name} does not take {rest}")


def check_command(argv, where):
    program, *args = argv
    if program == "celery":
        check_celery(args, where)
    elif program == "gunicorn":
        check_gunicorn(args, where)
    elif program == "python" and args[0] == "manage.py":
        check_manage(args[1:], where)
    elif program == "python" and args[0] == "-m":
        check_module(args[1:], where)
    elif program == "python":
        assert (ROOT / args[0]).is_file(), f"{where}: {args[0]} is not in the project"
    else:
        pytest.fail(f"{where}: {program} is not something this project provides")


# --- Tests --------------------------------------------------------------------------------


def test_the_compose_reader_sees_every_service_and_a_command_for_each_of_ours():
    services = compose()
    assert {"rabbitmq-1", "rabbitmq-2", "rabbitmq-3", "postgres", "web", "beat", "flower"} <= set(
        services
    )
    assert {"smtp-sink", "migrate", "warehouse", "shop-events"} <= set(services)
    ours = [name for name, service in services.items() if service["app"]]
    assert len(ours) >= 10
    assert all(services[name].get("command") for name in ours), ours


@pytest.mark.parametrize(
    ("where", "argv"), [pytest.param(where, argv, id=where) for where, argv in app_commands()]
)
def test_every_command_line_runs_something_the_project_has(where, argv):
    check_command(argv, where)


def test_every_queue_has_a_worker_service_and_a_procfile_worker():
    for source, commands in (
        ("docker/compose.yaml", [s.get("command", []) for s in compose().values()]),
        ("Procfile", list(procfile().values())),
    ):
        served = {name for argv in commands if is_worker(argv) for name in queue_names(argv)}
        # A scaler (jobs/autoscale.py) runs the workers of the queue it is given.
        served |= {argv[3] for argv in commands if argv[1:3] == ["manage.py", "scale_workers"]}
        missing = set(queues.WORK_QUEUE_NAMES) - served
        assert not missing, f"{source}: no worker consumes {sorted(missing)}"


def test_compose_runs_one_worker_service_per_queue_and_its_health_check_pings_it():
    for name, service in compose().items():
        argv = service.get("command", [])
        if not is_worker(argv):
            continue
        (queue,) = queue_names(argv)
        assert name == f"worker-{queue}"
        assert argv[argv.index("--hostname") + 1] == f"{queue}@%h"
        test = service["test"]
        # $$ in the file is compose's escape: the container's shell sees $HOSTNAME.
        assert test[test.index("--destination") + 1] == f"{queue}@$$HOSTNAME"


def test_compose_files_it_mounts_exist():
    mounts = re.findall(r"^\s*- (\./[^:]+):", COMPOSE_FILE.read_text(), re.M)
    assert mounts
    for source in mounts:
        assert (COMPOSE_FILE.parent / source).exists(), source


# What Celery declares itself on the same vhost, that no policy may touch: the native delayed
# delivery's queues (quorum topology), a worker's and a client's pidbox queues, an event queue.
CELERY_OWN_QUEUES = (
    *(f"celery_delayed_{level}" for level in range(28)),
    "emails@web-1.celery.pidbox",
    "3f1c2a4e-2b7d-4c49-9a0e-5b8f7d6c1e2a.reply.celery.pidbox",
    "celeryev.3f1c2a4e-2b7d-4c49-9a0e-5b8f7d6c1e2a",
)
# Policy keys a quorum queue refuses or ignores (RabbitMQ 4), and overflow values it refuses.
QUORUM_UNSUPPORTED_POLICY_KEYS = {"queue-mode", "queue-version", "queue-master-locator", "ha-mode"}
QUORUM_OVERFLOW_VALUES = {"drop-head", "reject-publish"}


@functools.cache
def declared_queues(queue_type):
    """{queue: arguments} of every queue the app declares with RABBITMQ_QUEUE_TYPE=queue_type:
    the work queues, their parking queues and the event queues (config/queues.py imported in a
    process of its own, since the type is read at import)."""
    script = (
        "import json\n"
        "from config import queues as q\n"
        "print(json.dumps({x.name: x.queue_arguments or {}\n"
        "    for x in q.TASK_QUEUES + q.DEAD_LETTER_QUEUES + q.EVENT_QUEUES}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "RABBITMQ_QUEUE_TYPE": queue_type},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_rabbitmq_policies_leave_the_queue_arguments_the_app_declares_alone(queue_type):
    definitions = json.loads((ROOT / "docker/rabbitmq/definitions.json").read_text())
    (vhost,) = [v["name"] for v in definitions["vhosts"]]
    for name, service in compose_services().items():
        for variable, value in broker_urls(service).items():
            paths = {urllib.parse.urlsplit(url).path for url in value.split(";")}
            assert paths == {f"/{vhost}"}, (name, variable, value)
    assert [u["name"] for u in definitions["users"]] == ["__RABBITMQ_USER__"]
    assert "guest" not in json.dumps(definitions)
    assert definitions["policies"]
    declared = declared_queues(queue_type)
    # This process's own topology (RABBITMQ_QUEUE_TYPE of the test run) is one of the two.
    assert {q.name for q in queues.TASK_QUEUES + queues.DEAD_LETTER_QUEUES} <= set(declared)
    for policy in definitions["policies"]:
        keys = set(policy["definition"])
        matched = [name for name in declared if re.search(policy["pattern"], name)]
        assert matched, f"policy {policy['name']} matches none of the app's queues"
        for name in matched:
            arguments = {key.removeprefix("x-") for key in declared[name]}
            # A policy loses to a queue argument, or (a quorum queue's overflow) is refused.
            assert not arguments & keys, (policy["name"], name, arguments & keys)
            if declared[name].get("x-queue-type") == "quorum":
                assert not keys & QUORUM_UNSUPPORTED_POLICY_KEYS, (policy["name"], name)
                overflow = policy["definition"].get("overflow", "drop-head")
                assert overflow in QUORUM_OVERFLOW_VALUES, (policy["name"], name, overflow)
        touched = [name for name in CELERY_OWN_QUEUES if re.search(policy["pattern"], name)]
        assert not touched, f"policy {policy['name']} matches Celery's own queues {touched}"


def test_rabbitmq_start_writes_the_user_and_the_cookie_from_the_environment(tmp_path):
    fake_image_entrypoint = tmp_path / "docker-entrypoint.sh"
    fake_image_entrypoint.write_text(
        '#!/bin/sh\necho "started: $* cookie variable: ${RABBITMQ_CLUSTER_COOKIE:-unset}"\n'
    )
    fake_image_entrypoint.chmod(0o755)
    rendered = tmp_path / "definitions.json"
    cookie_file = tmp_path / ".erlang.cookie"
    cookie = "c00kie-of-the.cluster_~" * 2

    def start(**env):
        return subprocess.run(
            ["sh", str(ROOT / "docker/rabbitmq/entrypoint.sh"), "rabbitmq-server"],
            env={
                "PATH": f"{tmp_path}:{os.environ['PATH']}",
                "DEFINITIONS_TEMPLATE": str(ROOT / "docker/rabbitmq/definitions.json"),
                "DEFINITIONS_FILE": str(rendered),
                "ERLANG_COOKIE_FILE": str(cookie_file),
                **env,
            },
            capture_output=True,
            text=True,
            timeout=30,
        )

    result = start(
        RABBITMQ_USER="shop", RABBITMQ_PASSWORD="s3cret_-.~X", RABBITMQ_CLUSTER_COOKIE=cookie
    )
    assert result.returncode == 0, result.stderr
    # The server gets the cookie from the file only.
    assert result.stdout.strip() == "started: rabbitmq-server cookie variable: unset"
    definitions = json.loads(rendered.read_text())
    assert definitions["users"][0]["name"] == "shop"
    assert definitions["users"][0]["password"] == "s3cret_-.~X"
    assert {p["user"] for p in definitions["permissions"]} == {"shop"}
    assert rendered.stat().st_mode & 0o077 == 0
    # Erlang reads the cookie only from a file its owner alone can read, without a newline.
    assert cookie_file.read_bytes() == cookie.encode()
    assert cookie_file.stat().st_mode & 0o777 == 0o400

    # A new cookie replaces the read-only file of the last start.
    other = "another-cookie-for-all-3-nodes"
    assert (
        start(
            RABBITMQ_USER="shop", RABBITMQ_PASSWORD="pw", RABBITMQ_CLUSTER_COOKIE=other
        ).returncode
        == 0
    )
    assert cookie_file.read_text() == other
    assert cookie_file.stat().st_mode & 0o777 == 0o400
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".erlang")] == [
        ".erlang.cookie"
    ]

    refused = start(RABBITMQ_USER="shop", RABBITMQ_PASSWORD='a"b/c', RABBITMQ_CLUSTER_COOKIE=cookie)
    assert refused.returncode != 0 and "may only use" in refused.stderr
    assert start(RABBITMQ_USER="shop", RABBITMQ_CLUSTER_COOKIE=cookie).returncode != 0
    no_cookie = start(RABBITMQ_USER="shop", RABBITMQ_PASSWORD="pw")
    assert no_cookie.returncode != 0 and "RABBITMQ_CLUSTER_COOKIE" in no_cookie.stderr
    short = start(RABBITMQ_USER="shop", RABBITMQ_PASSWORD="pw", RABBITMQ_CLUSTER_COOKIE="short")
    assert short.returncode != 0 and "20 to 255" in short.stderr
    odd = start(RABBITMQ_USER="shop", RABBITMQ_PASSWORD="pw", RABBITMQ_CLUSTER_COOKIE="a b" * 10)
    assert odd.returncode != 0 and "may only use" in odd.stderr
    assert cookie_file.read_text() == other  # refused starts leave the cookie alone


def test_interpolate_fills_in_compose_variables_as_compose_does():
    assert interpolate(["./a:/b:ro", "${X:-d}"], {}) == ["./a:/b:ro", "d"]
    assert interpolate("${X:-d} ${Y} $$Z", {"X": "x", "Y": "y"}) == "x y $Z"
    with pytest.raises(KeyError):
        interpolate("${X:?set X}", {"X": ""})


def test_compose_runs_three_rabbitmq_nodes_each_with_its_name_and_data():
    services = compose_services()
    nodes = rabbitmq_node_services(services)
    assert len(nodes) == 3, sorted(nodes)
    data_volumes = []
    for name, node in nodes.items():
        assert node["image"] == "rabbitmq:4.2-management", name
        # The node's name is rabbit@<hostname>; the other nodes and the clients reach it by the
        # service name, so the two must be one.
        assert node.get("hostname") == name, f"{name}: hostname {node.get('hostname')}"
        assert node["entrypoint"] == ["sh", "/etc/rabbitmq/shop-jobs/entrypoint.sh"], name
        assert node["command"] == ["rabbitmq-server"], name
        assert node["healthcheck"]["test"], name
        data = mounts(node)["/var/lib/rabbitmq"]
        assert data in compose_source()["volumes"], f"{name}: {data} is not a named volume"
        data_volumes.append(data)
        # The management UI, and nothing else, on this machine only.
        for port in node.get("ports") or []:
            assert port.startswith("127.0.0.1:") and port.endswith(":15672"), (name, port)
    assert len(set(data_volumes)) == 3, f"the nodes share data volumes: {data_volumes}"
    assert any(node.get("ports") for node in nodes.values()), "no management UI"


def test_the_rabbitmq_nodes_share_one_erlang_cookie_from_docker_env():
    source = rabbitmq_node_services(compose_source()["services"])
    # The same variable of docker/.env, required, for every node (compose refuses to start
    # without it). Not RABBITMQ_ERLANG_COOKIE, which the image's entrypoint no longer handles,
    # and no cookie file mounted for one node: entrypoint.sh writes each node's file.
    cookies = {
        name: environment(node).get("RABBITMQ_CLUSTER_COOKIE") for name, node in source.items()
    }
    assert len(set(cookies.values())) == 1, cookies
    (cookie,) = set(cookies.values())
    assert cookie and cookie.startswith("${RABBITMQ_CLUSTER_COOKIE:?"), cookie
    for name, node in source.items():
        assert "RABBITMQ_ERLANG_COOKIE" not in environment(node), name
        assert not any(".erlang.cookie" in target for target in mounts(node)), name
    # Each node writes it into its cookie file, through the same entrypoint from the same mount
    # (test_rabbitmq_start_writes_the_user_and_the_cookie_from_the_environment runs it).
    services = rabbitmq_node_services(compose_services())
    assert {mounts(node)["/etc/rabbitmq/shop-jobs"] for node in services.values()} == {"./rabbitmq"}
    assert {n["environment"]["RABBITMQ_CLUSTER_COOKIE"] for n in services.values()} == {
        COMPOSE_TEST_ENV["RABBITMQ_CLUSTER_COOKIE"]
    }


def test_the_rabbitmq_nodes_load_the_cluster_settings_the_tests_run(tmp_path, monkeypatch):
    # The tested cluster's configuration, as testkit/rabbitmq_nodes.py writes it for a node.
    monkeypatch.setattr(rabbitmq_nodes, "ROOT", tmp_path)
    tested = rabbitmq_nodes.Cluster(3).nodes[0]
    tested.write_config()
    home = tested.outside(tested.home)
    tested_conf = rabbitmq_conf((home / "rabbitmq.conf").read_text())
    tested_settings = {
        key: value
        for key, value in tested_conf.items()
        if key.startswith("cluster_") and not key.startswith("cluster_formation.classic_config.")
    }
    assert tested_settings == {
        "cluster_partition_handling": "pause_minority",
        "cluster_formation.peer_discovery_backend": "classic_config",
    }
    tested_peers = [v for k, v in tested_conf.items() if k.startswith("cluster_formation.classic")]
    tested_ticktime = net_ticktime((home / "advanced.config").read_text())
    assert tested_ticktime

    nodes = rabbitmq_node_services(compose_services())
    loaded = set()
    for name, node in nodes.items():
        files = mounts(node)
        confs = [
            source
            for target, source in files.items()
            if target == "/etc/rabbitmq/rabbitmq.conf"
            or re.fullmatch(r"/etc/rabbitmq/conf\.d/[^/]+\.conf", target)
        ]
        assert len(confs) == 1, f"{name} loads {confs}"
        advanced = files.get("/etc/rabbitmq/advanced.config")
        assert advanced, f"{name} has no advanced.config"
        loaded.add((confs[0], advanced))
    assert len(loaded) == 1, f"the nodes load different files: {loaded}"
    ((conf_path, advanced_path),) = loaded
    conf = rabbitmq_conf((COMPOSE_FILE.parent / conf_path).read_text())

    settings = {
        key: value
        for key, value in conf.items()
        if key.startswith("cluster_") and not key.startswith("cluster_formation.classic_config.")
    }
    assert settings == tested_settings
    peers = [v for k, v in conf.items() if k.startswith("cluster_formation.classic_config.nodes.")]
    assert sorted(peers) == sorted(f"rabbit@{node['hostname']}" for node in nodes.values())
    assert len(peers) == len(tested_peers) == 3
    ticktime = net_ticktime((COMPOSE_FILE.parent / advanced_path).read_text())
    assert ticktime == tested_ticktime
    # Every node imports the definitions the entrypoint renders.
    entrypoint = (COMPOSE_FILE.parent / "rabbitmq/entrypoint.sh").read_text()
    (rendered,) = re.findall(r"rendered=\$\{DEFINITIONS_FILE:-([^}]+)\}", entrypoint)
    assert conf["load_definitions"] == rendered


def test_every_service_that_talks_to_rabbitmq_knows_every_node_and_declares_quorum_queues():
    services = compose_services()
    nodes = rabbitmq_node_services(services)
    hosts = sorted(node["hostname"] for node in nodes.values())
    # Every service of the project's image has the broker's URL (the app's settings import
    # config.queues); the warehouse has its own variable.
    ours = {
        name for name, service in services.items() if service.get("image") == "shop-jobs:latest"
    }
    clients = {name for name, service in services.items() if broker_urls(service)}
    assert ours <= clients, f"no broker URL: {sorted(ours - clients)}"
    assert {"web", "beat", "flower", "warehouse", "shop-events"} <= clients
    for name in clients:
        env = environment(services[name])
        assert env.get("RABBITMQ_QUEUE_TYPE") == "quorum", f"{name}: RABBITMQ_QUEUE_TYPE"
        for variable, value in broker_urls(services[name]).items():
            urls = [urllib.parse.urlsplit(url) for url in value.split(";")]
            assert sorted(url.hostname for url in urls) == hosts, (name, variable, value)
            for url in urls:
                assert url.scheme == "amqp" and url.port == 5672, (name, variable, value)
                assert url.username == "shop_jobs", (name, variable, value)
                assert url.password == COMPOSE_TEST_ENV["RABBITMQ_PASSWORD"], (name, variable)
    api = urllib.parse.urlsplit(environment(services["flower"])["FLOWER_BROKER_API"])
    assert api.hostname in hosts and api.port == 15672


def test_services_that_use_rabbitmq_wait_for_every_node_to_be_healthy():
    services = compose_services()
    nodes = set(rabbitmq_node_services(services))
    # `migrate` runs before anything talks to the broker, the SMTP sink never does.
    waiting = {
        name
        for name, service in services.items()
        if broker_urls(service) and name not in {"migrate", "smtp-sink"}
    }
    assert waiting
    for name in waiting:
        depends_on = services[name].get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for node in nodes:
            condition = (depends_on.get(node) or {}).get("condition")
            assert condition == "service_healthy", f"{name} does not wait for {node}"
    for name, service in services.items():
        named = set(service.get("depends_on") or ()) & nodes
        assert named in (set(), nodes), f"{name} waits for {sorted(named)} only"


def test_new_env_writes_every_secret_compose_requires(tmp_path):
    env_file = tmp_path / ".env"
    result = subprocess.run(
        ["sh", str(COMPOSE_FILE.parent / "new-env.sh"), str(env_file)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    written = dict(
        line.split("=", 1)
        for line in env_file.read_text().splitlines()
        if line and not line.startswith("#")
    )
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE_FILE.read_text()))
    assert required == set(COMPOSE_SECRETS)
    assert required <= set(written), f"not written: {sorted(required - set(written))}"
    for name in required:
        assert re.fullmatch(r"[A-Za-z0-9._~-]{16,}", written[name]), name
    assert 20 <= len(written["RABBITMQ_CLUSTER_COOKIE"]) <= 255
    assert env_file.stat().st_mode & 0o077 == 0


def test_production_serves_collected_static_files_compressed_and_cached(tmp_path):
    script = """
from django.core.management import call_command
from django.templatetags.static import static
from django.test import Client
call_command("collectstatic", "--noinput", verbosity=0)
url = static("shop/style.css")
assert url != "/static/shop/style.css", url  # a content hash in the name
response = Client().get(url, secure=True, headers={"accept-encoding": "gzip"})
print(response.status_code, response["Content-Encoding"], response["Cache-Control"])
"""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env={
            **os.environ,
            "DEBUG": "0",
            "SECRET_KEY": "x" * 50,
            "ALLOWED_HOSTS": "testserver",
            "STATIC_ROOT": str(tmp_path / "static"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    status, encoding, cache_control = result.stdout.splitlines()[-1].split(" ", 2)
    assert (status, encoding) == ("200", "gzip")
    assert "immutable" in cache_control


@functools.cache
def compose_cli():
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def compose_config(env_file):
    cli = compose_cli()
    if cli is None:
        missing(
            "docker-compose or `docker compose` (to validate docker/compose.yaml)",
            "make test installs Debian's docker-compose when run as root; or: "
            "sudo apt-get install --no-install-recommends docker-compose",
        )
    # Only the env file counts: none of the variables compose.yaml reads comes from this process.
    referenced = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    env = {k: v for k, v in os.environ.items() if k not in referenced}
    return subprocess.run(
        [*cli, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_docker_compose_accepts_the_compose_file(tmp_path):
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in COMPOSE_TEST_ENV.items()))
    result = compose_config(env_file)
    assert result.returncode == 0, result.stderr
    for name in compose():
        assert f"  {name}:" in result.stdout
    assert "service_completed_successfully" in result.stdout
    # compose resolves the anchors and ${...} as this file's reader does: the broker URLs (all
    # nodes, one line each) are the ones the cluster tests above checked.
    urls = [url for s in compose_services().values() for url in broker_urls(s).values()]
    assert len(urls) >= 10
    for url in set(urls):
        assert result.stdout.count(url) == urls.count(url), url


def test_docker_compose_refuses_to_start_without_the_secrets(tmp_path):
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    result = compose_config(env_file)
    assert result.returncode != 0
    assert "in docker/.env" in result.stderr

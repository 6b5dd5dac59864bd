"""Deployment: the compose file, the Procfile and the Dockerfile run only what exists here.

No Docker engine is needed. Every command line that docker/compose.yaml, the Procfile and the
Dockerfile start from this project's image is checked against the project itself: the Celery
app path, the celery subcommands and their options, the management commands and their
options, gunicorn's WSGI path and options, and the queues (every queue has a worker, every
worker's queue exists). Where `docker-compose` (Debian's package) or `docker compose` is
installed, the compose file is also validated by it.
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

import pytest
from celery.app.utils import find_app
from django.core.management import get_commands, load_command_class

from config import queues
from tests.processes import ROOT

COMPOSE_FILE = ROOT / "docker" / "compose.yaml"
COMPOSE_SECRETS = ("SECRET_KEY", "POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "FLOWER_PASSWORD")


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
    assert {"rabbitmq", "postgres", "web", "beat", "flower", "smtp-sink", "migrate"} <= set(
        services
    )
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


def test_rabbitmq_policies_leave_the_queue_arguments_the_app_declares_alone():
    definitions = json.loads((ROOT / "docker/rabbitmq/definitions.json").read_text())
    (vhost,) = [v["name"] for v in definitions["vhosts"]]
    assert f"@rabbitmq:5672/{vhost}" in COMPOSE_FILE.read_text()
    assert [u["name"] for u in definitions["users"]] == ["__RABBITMQ_USER__"]
    assert "guest" not in json.dumps(definitions)
    assert definitions["policies"]
    for policy in definitions["policies"]:
        matched = [
            queue
            for queue in queues.TASK_QUEUES + queues.DEAD_LETTER_QUEUES
            if re.search(policy["pattern"], queue.name)
        ]
        assert matched, f"policy {policy['name']} matches none of the app's queues"
        for queue in matched:
            declared = {key.removeprefix("x-") for key in queue.queue_arguments or {}}
            assert not declared & set(policy["definition"]), (policy["name"], queue.name)


def test_rabbitmq_start_writes_the_user_from_the_environment_into_the_definitions(tmp_path):
    fake_image_entrypoint = tmp_path / "docker-entrypoint.sh"
    fake_image_entrypoint.write_text('#!/bin/sh\necho "started: $*"\n')
    fake_image_entrypoint.chmod(0o755)
    rendered = tmp_path / "definitions.json"

    def start(**env):
        return subprocess.run(
            ["sh", str(ROOT / "docker/rabbitmq/entrypoint.sh"), "rabbitmq-server"],
            env={
                "PATH": f"{tmp_path}:{os.environ['PATH']}",
                "DEFINITIONS_TEMPLATE": str(ROOT / "docker/rabbitmq/definitions.json"),
                "DEFINITIONS_FILE": str(rendered),
                **env,
            },
            capture_output=True,
            text=True,
            timeout=30,
        )

    result = start(RABBITMQ_USER="shop", RABBITMQ_PASSWORD="s3cret_-.~X")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started: rabbitmq-server"
    definitions = json.loads(rendered.read_text())
    assert definitions["users"][0]["name"] == "shop"
    assert definitions["users"][0]["password"] == "s3cret_-.~X"
    assert {p["user"] for p in definitions["permissions"]} == {"shop"}
    assert rendered.stat().st_mode & 0o077 == 0

    refused = start(RABBITMQ_USER="shop", RABBITMQ_PASSWORD='a"b/c')
    assert refused.returncode != 0 and "may only use" in refused.stderr
    assert start(RABBITMQ_USER="shop").returncode != 0


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
        pytest.skip(
            "docker/compose.yaml not validated: neither docker-compose nor `docker compose` is "
            "installed (make test installs Debian's docker-compose when run as root; or: "
            "sudo apt-get install --no-install-recommends docker-compose)"
        )
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_SECRETS}
    return subprocess.run(
        [*cli, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_docker_compose_accepts_the_compose_file(tmp_path):
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{name}=test-{name.lower()}\n" for name in COMPOSE_SECRETS))
    result = compose_config(env_file)
    assert result.returncode == 0, result.stderr
    for name in compose():
        assert f"  {name}:" in result.stdout
    assert "service_completed_successfully" in result.stdout


def test_docker_compose_refuses_to_start_without_the_secrets(tmp_path):
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    result = compose_config(env_file)
    assert result.returncode != 0
    assert "in docker/.env" in result.stderr

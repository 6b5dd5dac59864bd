"""The rules the docs state about the code, checked against the code itself.

    python -m pytest tests/test_architecture.py

- no import cycles between the project's modules, computed from their imports;
- every task the app registers has a route (as its job was declared, or CELERY_TASK_ROUTES),
  and a worker that knows one without refuses to start, naming it;
- every `path.py: name` the README and docs/ cite exists, in this project or in the installed
  package it names.
"""

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery

from config import queues
from config.celery import app as celery_app
from jobs.declare import unrouted
from testkit.processes import ROOT

# The project's own packages: everything else imported is a library.
PACKAGES = sorted(
    p.name
    for p in ROOT.iterdir()
    if (p / "__init__.py").exists() and p.name not in {"tests", "bench"}
)


def project_modules():
    """{module name: file} of every module of the project's packages, migrations aside."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(name, path, modules):
    """The project modules that module `name` imports, wherever in it (functions included)."""

    def known(dotted):
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(known(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".strip(".")
            found.update(known(f"{base}.{alias.name}") or known(base) for alias in node.names)
    return found - {"", name}


def import_cycles(graph):
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_a_cycle_and_nothing_else():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


DOMAIN_APPS = {"shop", "notifications", "media_jobs", "suppliers", "warehouse", "demo"}
# What jobs/ may not import either, to be copied into another project on its own.
PROJECT_PACKAGES = DOMAIN_APPS | {"config", "contracts", "tests", "bench", "testkit"}


def import_graph():
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_no_module_of_the_project_imports_itself_through_others():
    graph = import_graph()
    assert {"config.queues", "jobs.outbox", "shop.services"} <= set(graph)
    assert "jobs.outbox" in graph["shop.services"]  # the reader sees imports at all
    assert import_cycles(graph) == []


def test_the_job_plumbing_imports_nothing_of_the_project_and_nothing_imports_the_demo():
    graph = import_graph()
    assert "jobs.outbox" in graph["shop.services"]  # the project may import jobs/
    upward = {
        (module, imported)
        for module, imports in graph.items()
        for imported in imports
        if module.split(".")[0] == "jobs" and imported.split(".")[0] in PROJECT_PACKAGES
    }
    assert upward == set()
    into_the_demo = {
        (module, imported)
        for module, imports in graph.items()
        for imported in imports
        # testkit/ runs the demo's stand-ins (the SMTP sink) for the tests, as make demo does.
        if imported.split(".")[0] == "demo" and module.split(".")[0] not in {"demo", "testkit"}
    }
    assert into_the_demo == set()


def test_production_settings_leave_the_demo_out():
    def installed(**env):
        script = "from django.conf import settings; print('demo' in settings.INSTALLED_APPS)"
        result = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {script}"],
            cwd=ROOT,
            env={
                **{k: v for k, v in os.environ.items() if k not in ("DEBUG", "DEMO")},
                "DJANGO_SETTINGS_MODULE": "config.settings",
                **env,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip() == "True"

    production = {"DEBUG": "0", "SECRET_KEY": "x" * 50}
    assert not installed(**production)
    assert installed(**production, DEMO="1")  # compose's smtp-sink container
    assert installed(DEBUG="1")


def test_every_registered_task_has_a_route():
    celery_app.loader.import_default_modules()
    assert "notifications.send_order_confirmation" in celery_app.tasks
    assert unrouted(celery_app) == []
    # A job routes itself as declared; a task that is not a job, by the project's routes.
    router = celery_app.amqp.router
    confirmation = router.route({}, "notifications.send_order_confirmation")
    assert (confirmation["queue"].name, confirmation["priority"]) == ("emails", 9)
    assert router.route({}, "suppliers.fetch_all_suppliers")["queue"].name == "integrations"
    # jobs/' own tasks go to the default queue unless the project's routes say otherwise.
    assert router.route({}, "jobs.republish_pending_jobs")["queue"].name == queues.DEFAULT_QUEUE
    assert router.route({}, "jobs.noop")["queue"].name == "emails"

    other = Celery("other", set_as_current=False)
    other.config_from_object("django.conf:settings", namespace="CELERY")
    other.task(name="shop.forgotten")(nothing)
    other.task(name="celery.made_up")(nothing)
    assert unrouted(other) == ["shop.forgotten"]


def nothing():
    """A task body for the routes test (Celery makes no task of a lambda)."""


def test_a_worker_that_knows_an_unrouted_task_refuses_to_start_naming_it():
    # --include imports tests/unrouted_task.py into the worker: one task, no route. The check
    # runs before the worker connects anywhere, so no broker is needed.
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--include",
         "tests.unrouted_task", "--pool", "solo", "--loglevel", "INFO"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "without a route" in result.stderr
    assert "tests.forgotten_to_route" in result.stderr


# `some/file.py: name` or `some/file.py: Class.attribute`, in backquotes.
CITATION = re.compile(r"`([\w/]+\.py): ?([A-Za-z_][\w.]*)`")


def cited():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for path, name in CITATION.findall(page.read_text()):
            yield page.relative_to(ROOT), path, name


def source_of(path):
    """The cited file: the project's own, or an installed package's (celery/app/base.py)."""
    if (ROOT / path).exists():
        return ROOT / path
    try:
        spec = importlib.util.find_spec(path.split("/")[0])
    except ModuleNotFoundError:  # "a.py" looks like a submodule of a package "a"
        spec = None
    if spec and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))).parent / path
        if candidate.exists():
            return candidate
    return None


def defines(tree, dotted):
    """True if module `tree` defines `dotted`: `name` anywhere in it (a function, class or
    method, or a module-level variable), or `Class.name` inside that class."""
    *outer, name = dotted.split(".")
    scope = tree
    for part in outer:
        scope = next((n for n in ast.walk(scope) if _named(n) == part), None)
        if scope is None:
            return False
    if not outer and any(name in _assigned(node) for node in tree.body):
        return True
    return any(_named(node) == name or name in _assigned(node) for node in ast.walk(scope))


def _named(node):
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name
    return None


def _assigned(node):
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    return set()


def test_every_file_and_name_the_docs_cite_exists():
    citations = list(cited())
    assert len(citations) > 20
    wrong = []
    for page, path, name in citations:
        source = source_of(path)
        if source is None:
            wrong.append(f"{page}: {path} does not exist")
        elif not defines(ast.parse(source.read_text()), name):
            wrong.append(f"{page}: {path} has no {name}")
    assert wrong == []


@pytest.mark.parametrize("dotted", ["JobTask.come_back_in", "backoff_seconds", "logger"])
def test_the_citation_check_finds_what_a_module_defines(dotted):
    tree = ast.parse((ROOT / "jobs/runner.py").read_text())
    assert defines(tree, dotted)
    assert not defines(tree, dotted + "_not_there")


# A write to the jobs' tables: Job.objects.create/update/..., Job(...) or JobEvent(...) rows.
JOB_WRITE = re.compile(
    r"\bJob(Event)?\.objects\.(\w+\()?.*\.(create|bulk_create|update|delete|get_or_create)\("
    r"|\bJob(Event)?\.objects\.(create|bulk_create|get_or_create)\(|\bJob(Event)?\("
)


def test_only_the_job_plumbing_writes_job_rows():
    writers = sorted(
        str(path.relative_to(ROOT))
        for name, path in project_modules().items()
        if not name.startswith("jobs")
        and any(JOB_WRITE.search(line) for line in path.read_text().splitlines())
    )
    assert writers == []
    assert JOB_WRITE.search("Job.objects.filter(pk=1).update(state=x)")
    assert JOB_WRITE.search("JobEvent(job_id=1, kind=k)")
    assert not JOB_WRITE.search("Job.objects.filter(pk=1).first()")


def imports_from(directory, package):
    """{file of `directory`: the modules of `package` it imports}, for files that do."""
    found = {}
    for path in sorted((ROOT / directory).rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        hits = sorted(n for n in names if n == package or n.startswith(package + "."))
        if hits:
            found[path.relative_to(ROOT).as_posix()] = hits
    return found


def test_the_benchmarks_share_helpers_with_the_tests_through_testkit_only():
    assert imports_from("bench", "testkit")  # they do share them
    assert imports_from("bench", "tests") == {}
    assert imports_from("testkit", "tests") == {}


# One rule for test files: named for their subject, `test_<subject>.py`; a second file for a
# subject that drives it end to end through a real worker and RabbitMQ ends in `_flow`.
TEST_FILE = re.compile(r"test_[a-z0-9]+(_[a-z0-9]+)*\.py")
NOT_A_SUBJECT = ("_unit", "_units", "_unittest", "_tests", "_worker", "_integration")


def test_test_files_follow_one_naming_rule():
    files = sorted((ROOT / "tests").rglob("test_*.py"))
    assert len(files) > 30
    for path in files:
        assert TEST_FILE.fullmatch(path.name), path.name
        assert not path.stem.endswith(NOT_A_SUBJECT), f"{path.name}: name its subject instead"
        if path.stem.endswith("_flow"):
            assert "start_worker" in path.read_text(), f"{path.name} runs no worker"


def declared_jobs():
    celery_app.loader.import_default_modules()
    return {name: task for name, task in celery_app.tasks.items() if getattr(task, "kind", None)}


def test_job_kinds_are_named_like_their_tasks():
    # The kind is the task's name without its app and its leading verb (or verbs): the task
    # `notifications.send_order_confirmation` makes jobs `order_confirmation:<order>`.
    jobs = declared_jobs()
    assert len(jobs) >= 12
    labels = {}
    for name, task in jobs.items():
        short = name.split(".", 1)[1]
        kind = task.kind.name
        assert short == kind or short.endswith("_" + kind), f"{name}: kind {kind!r}"
        # Two jobs may share a kind (a report asked for, and the scheduled one) with its words.
        assert labels.setdefault(kind, task.kind.label) == task.kind.label, name

"""Kinds of job, so that a job's state reads well on a page ("sent at 12:01 on attempt 2")."""

from dataclasses import dataclass

_KINDS = {}


@dataclass(frozen=True)
class JobKind:
    name: str
    label: str
    doing: str = "running"
    done: str = "done"

    def __post_init__(self):
        _KINDS[self.name] = self

    def key(self, object_id):
        """The job's idempotency key: one job of this kind per object, ever."""
        return f"{self.name}:{object_id}"


GENERIC = JobKind("job", "Job")


def get_kind(name):
    return _KINDS.get(name, GENERIC)

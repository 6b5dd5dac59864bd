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


def renamed_kind(old, new):
    """A migration operation for a project that renames a job kind: its jobs keep their rows.

    Each job's key starts with its kind (`old:42` becomes `new:42`), so a message still on its
    way when the code changes finds its job under the new name, done or not.
    """
    from django.db import migrations

    def rename(apps, schema_editor, old=old, new=new):
        from django.db.models import Value
        from django.db.models.functions import Concat, Substr

        Job = apps.get_model("jobs", "Job")
        Job.objects.filter(kind=old).update(
            kind=new, key=Concat(Value(new), Substr("key", len(old) + 1))
        )

    def rename_back(apps, schema_editor):
        rename(apps, schema_editor, old=new, new=old)

    return migrations.RunPython(rename, rename_back)

"""manage.py deadletters list|replay|discard: what the admin's dead-letter page does, in a shell."""

from django.core.management.base import BaseCommand, CommandError

from jobs import deadletters

NOT_DECLARED = "not declared yet (no worker has started on this broker)"


class Command(BaseCommand):
    help = "List, replay or discard dead-lettered jobs."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["list", "replay", "discard"])
        parser.add_argument("ids", nargs="*", help="message ids (task ids) to act on")
        parser.add_argument(
            "--queue",
            action="append",
            help="a dead-letter queue, e.g. emails.dead (default: all of them)",
        )
        parser.add_argument("--all", action="store_true", help="every message of the queue(s)")

    def handle(self, action, ids, queue, all, **options):
        names = queue or deadletters.dead_letter_queues()
        unknown = set(names) - set(deadletters.dead_letter_queues())
        if unknown:
            raise CommandError(f"not a dead-letter queue: {', '.join(sorted(unknown))}")
        if action == "list":
            return self.list(names)
        if bool(ids) == all:
            raise CommandError(f"{action} takes message ids or --all (not both)")
        act = deadletters.replay if action == "replay" else deadletters.discard
        done = sum(act(name, None if all else ids) for name in names)
        verb = "replayed" if action == "replay" else "discarded"
        self.stdout.write(f"{done} message(s) {verb}")
        if ids and done < len(ids):
            raise CommandError(f"only {done} of {len(ids)} message(s) found")
        return None

    def list(self, names):
        for name, depth in deadletters.depths().items():
            if name not in names:
                continue
            if depth is None:
                self.stdout.write(
                    f"{name}: not declared yet (no worker has started on this broker)"
                )
                continue
            self.stdout.write(self.style.MIGRATE_HEADING(f"{name}: {depth} message(s)"))
            for letter in deadletters.read(name):
                deaths = ", ".join(
                    f"{d['queue']} {d['reason']} x{d['count']}" for d in letter.deaths
                )
                first = (
                    f"{letter.first_failed_at:%Y-%m-%d %H:%M:%S}" if letter.first_failed_at else "?"
                )
                self.stdout.write(f"  {letter.id}  {letter.task}{letter.arguments}")
                self.stdout.write(f"      first failed {first} ({deaths or 'no x-death'})")
                self.stdout.write(f"      {letter.reason}")

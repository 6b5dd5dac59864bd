"""Each periodic run is sent once per slot (jobs/schedules.py): across both daylight saving time
changes, when beat comes back after missing runs, and with a second beat running.

The DST tests drive the real schedule objects (django-celery-beat's entry and crontab, our
scheduler's claim, the database) with a fake clock, minute by minute; the others run real
`celery beat` processes against the test vhost, with the outbox sweeper every second, and count
the messages in its queue, each of which names its slot in a header.
"""

import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from celery import beat as celery_beat
from celery.schedules import crontab
from django.utils import timezone
from django_celery_beat import schedulers as dcb_schedulers
from django_celery_beat import tzcrontab
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from config.celery import app as celery_app
from config.queues import EMAILS, MAINTENANCE
from jobs.schedules import SLOT_HEADER, SlotEntry, SlotScheduler
from jobs.topology import dead_letter_queue_name
from testkit.processes import Beat, wait_for

BERLIN = ZoneInfo("Europe/Berlin")
# 2026's changes in Europe/Berlin: 02:00-03:00 does not exist on the first, and happens twice
# on the second.
SPRING_FORWARD = date(2026, 3, 29)
FALL_BACK = date(2026, 10, 25)
SWEEPER = "publish-jobs-the-broker-missed"


# --- Daylight saving time: a fake clock, minute by minute ------------------------------------


@pytest.fixture
def shop_in_berlin(settings, monkeypatch):
    """The shop's time zone is Europe/Berlin: Django's, Celery's and new crontabs' alike."""
    settings.TIME_ZONE = settings.CELERY_TIMEZONE = "Europe/Berlin"
    monkeypatch.setitem(celery_app.conf, "timezone", "Europe/Berlin")
    celery_app.__dict__.pop("timezone", None)  # a cached property
    yield
    celery_app.__dict__.pop("timezone", None)


@pytest.fixture
def clock(monkeypatch):
    """The time django-celery-beat's entries and crontabs see: `clock.now`."""
    clock = SimpleNamespace(now=None)

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return (
                clock.now.astimezone(tz) if tz else clock.now.astimezone(UTC).replace(tzinfo=None)
            )

    monkeypatch.setattr(tzcrontab, "datetime", FakeDatetime)
    monkeypatch.setattr(
        dcb_schedulers, "datetime", SimpleNamespace(datetime=FakeDatetime, timedelta=timedelta)
    )
    return clock


@pytest.fixture
def sent(monkeypatch):
    """What the scheduler hands to Celery to publish: [(time, entry)], published nowhere."""
    sent = []
    monkeypatch.setattr(
        celery_beat.Scheduler,
        "apply_async",
        lambda scheduler, entry, *args, **kwargs: sent.append((entry._default_now(), entry)),
    )
    return sent


def beat_minute_by_minute(name, schedule, day, clock, task="jobs.noop", claim=True, restarts=True):
    """Run entry `name` from the day before `day` to the day after as beat's tick would, looking
    every minute whether it is due (what it sends lands in the `sent` fixture).

    claim=False runs django-celery-beat's own scheduler, sending whatever its entry finds due.
    With `restarts`, beat starts again (reads its entries from the database) after every send
    and every 7 minutes, as a beat in a crash loop would.
    """
    start = datetime(day.year, day.month, day.day, tzinfo=BERLIN) - timedelta(days=1)
    clock.now = start
    scheduler = (SlotScheduler if claim else dcb_schedulers.DatabaseScheduler)(
        app=celery_app, lazy=True
    )
    Entry = scheduler.Entry
    Entry.from_entry(name, app=celery_app, task=task, schedule=schedule)
    PeriodicTask.objects.filter(name=name).update(last_run_at=start)  # its last run, before

    def read():
        return Entry(PeriodicTask.objects.get(name=name), app=celery_app)

    entry = read()
    end = (start + timedelta(days=3)).astimezone(UTC)  # midnight after the day after: 71-73 h
    for minute in range(int((end - start.astimezone(UTC)).total_seconds() // 60)):
        clock.now = (start.astimezone(UTC) + timedelta(minutes=minute)).astimezone(BERLIN)
        if entry.is_due().is_due:
            next_entry = scheduler.reserve(entry)
            scheduler.apply_async(entry, advance=False)
            entry = read() if restarts else next_entry
        elif restarts and minute % 7 == 0:
            entry = read()


def fresh(cron):
    """A copy of crontab `cron` that has not read Celery's time zone yet."""
    fields = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
    return crontab(**{field: getattr(cron, f"_orig_{field}") for field in fields})


def per_local_day(times):
    return Counter(t.astimezone(BERLIN).date() for t in times)


# Celery 5.7.0's crontab, through django-celery-beat 2.9.0's entry, sends each of these once a
# day, 02:30 at 03:30 summer time on the day it does not exist and at its first occurrence on
# the day it happens twice (measured here; older releases sent it twice, celery#1604).
EXPECTED_RUNS = {
    (SPRING_FORWARD, 2, 30): "2026-03-29T03:30:00+02:00",
    (SPRING_FORWARD, 1, 0): "2026-03-29T01:00:00+01:00",
    (FALL_BACK, 2, 30): "2026-10-25T02:30:00+02:00",
    (FALL_BACK, 1, 0): "2026-10-25T01:00:00+02:00",
}


@pytest.mark.django_db
@pytest.mark.parametrize("day", [SPRING_FORWARD, FALL_BACK], ids=["march", "october"])
@pytest.mark.parametrize("hour, minute", [(2, 30), (1, 0)], ids=["0230", "0100"])
def test_a_daily_job_runs_once_on_each_day_of_a_dst_change(
    shop_in_berlin, clock, sent, day, hour, minute
):
    beat_minute_by_minute("daily", crontab(hour=hour, minute=minute), day, clock)

    runs = [at for at, _ in sent]
    assert per_local_day(runs) == {day - timedelta(days=1): 1, day: 1, day + timedelta(days=1): 1}
    on_the_day = [t for t in runs if t.astimezone(BERLIN).date() == day]
    assert [t.isoformat() for t in on_the_day] == [EXPECTED_RUNS[day, hour, minute]]
    # Each message names its slot: the local time it stands for, one per day.
    slots = [entry.options["headers"][SLOT_HEADER] for _, entry in sent]
    assert len(set(slots)) == 3
    assert [datetime.fromisoformat(s).date() for s in slots] == sorted(per_local_day(runs))


@pytest.mark.django_db
@pytest.mark.parametrize("day", [SPRING_FORWARD, FALL_BACK], ids=["march", "october"])
def test_the_daily_report_gets_the_day_of_its_slot(shop_in_berlin, clock, sent, day):
    """The project's own entry, at 01:00: its task takes `slot`, and reports the day before it."""
    from django.conf import settings

    daily = settings.CELERY_BEAT_SCHEDULE["daily-sales-report"]
    beat_minute_by_minute(
        "daily-sales-report", fresh(daily["schedule"]), day, clock, task=daily["task"]
    )

    runs = [at for at, _ in sent]
    assert per_local_day(runs) == {day - timedelta(days=1): 1, day: 1, day + timedelta(days=1): 1}
    assert [t.isoformat() for t in runs if t.date() == day] == [EXPECTED_RUNS[day, 1, 0]]
    # shop.build_scheduled_sales_report takes `slot`: the day before it is the one reported.
    slots = [entry.kwargs["slot"] for _, entry in sent]
    assert [datetime.fromisoformat(s).date() for s in slots] == sorted(per_local_day(runs))


@pytest.mark.django_db
@pytest.mark.parametrize("day", [SPRING_FORWARD, FALL_BACK], ids=["march", "october"])
def test_django_celery_beat_alone_also_sends_0230_once_on_a_dst_day(
    shop_in_berlin, clock, sent, day
):
    """What Celery 5.7.0 and django-celery-beat 2.9.0 do without the claim, in a beat that is
    not restarted: the same, once a day. (Restarted within 3 minutes of a send, it sends again:
    it writes last_run_at to the database every 3 minutes, not at the send.)"""
    beat_minute_by_minute(
        "daily", crontab(hour=2, minute=30), day, clock, claim=False, restarts=False
    )

    runs = [at for at, _ in sent]
    assert per_local_day(runs)[day] == 1
    assert [t.isoformat() for t in runs if t.date() == day] == [EXPECTED_RUNS[day, 2, 30]]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "first, again",
    [
        # Sent at 03:30 summer time, then an hour late as celery#9653 and
        # django-celery-beat#134 report: the same day's 02:30.
        ("2026-03-29T03:30:00+02:00", "2026-03-29T04:30:00+02:00"),
        # Sent at the first 02:30, then at the second, as celery#1604 reports.
        ("2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00"),
    ],
    ids=["march-an-hour-late", "october-the-second-0230"],
)
def test_a_second_send_on_a_dst_day_finds_the_slot_taken(shop_in_berlin, clock, sent, first, again):
    """Whatever Celery's crontab does around a change, the day's 02:30 is one slot."""
    clock.now = datetime.fromisoformat(first) - timedelta(days=1)
    SlotEntry.from_entry(
        "daily", app=celery_app, task="jobs.noop", schedule=crontab(hour=2, minute=30)
    )
    scheduler = SlotScheduler(app=celery_app, lazy=True)
    for at in (first, again):
        clock.now = datetime.fromisoformat(at).astimezone(BERLIN)
        entry = SlotEntry(PeriodicTask.objects.get(name="daily"), app=celery_app)
        scheduler.apply_async(entry, advance=False)  # as if Celery found it due

    assert [at.isoformat() for at, _ in sent] == [first]


@pytest.mark.django_db
def test_a_run_the_broker_did_not_take_is_due_again(shop_in_berlin, clock, monkeypatch):
    clock.now = datetime(2026, 3, 29, 1, 0, tzinfo=BERLIN)
    SlotEntry.from_entry(
        "daily", app=celery_app, task="jobs.noop", schedule=crontab(hour=1, minute=0)
    )
    PeriodicTask.objects.filter(name="daily").update(last_run_at=clock.now - timedelta(days=1))
    scheduler = SlotScheduler(app=celery_app, lazy=True)

    def broker_away(*args, **kwargs):
        raise ConnectionRefusedError("the broker is away")

    monkeypatch.setattr(celery_beat.Scheduler, "apply_async", broker_away)
    entry = SlotEntry(PeriodicTask.objects.get(name="daily"), app=celery_app)
    with pytest.raises(ConnectionRefusedError):
        scheduler.apply_async(entry, advance=False)

    # Read again (django-celery-beat's full sync, within 5 minutes): still due, not sent.
    clock.now += timedelta(minutes=5)
    entry = SlotEntry(PeriodicTask.objects.get(name="daily"), app=celery_app)
    assert entry.is_due().is_due
    assert PeriodicTask.objects.get(name="daily").total_run_count == 0


# --- Real beat processes ------------------------------------------------------------------------


@pytest.fixture
def beats(process_env, tmp_path):
    """Start real `celery beat` processes on the test database and vhost: beats.start().

    The outbox sweeper is sent every second; nothing consumes its queue, so each message beat
    sends stays there to be counted. Every process is killed at the end, passed or failed.
    """
    env = dict(
        process_env,
        OUTBOX_SWEEP_INTERVAL_SECONDS="1",
        SUPPLIER_FETCH_INTERVAL_SECONDS="86400",
    )
    started = []

    def start():
        n = len(started)
        beat = Beat(
            env=env, log_path=tmp_path / f"beat-{n}.log", pidfile=tmp_path / f"beat-{n}.pid"
        )
        started.append(beat)
        return beat.start()

    yield SimpleNamespace(start=start)
    for beat in started:
        beat.kill()


def sent_slots(broker, name):
    """The slots of the messages beat sent for entry `name`, as queued (left in the queue):
    the sweeper's on `maintenance`, `jobs.noop`'s on `emails`. Their dead-letter queues too: on
    a quorum queue every peek counts a delivery, and the twentieth parks the message there."""
    return [
        message["headers"].get(SLOT_HEADER)
        for queue in (MAINTENANCE, EMAILS)
        for name_of in (str, dead_letter_queue_name)
        for message in broker.peek(name_of(queue), limit=1000)
        if message["headers"].get("periodic_task_name") == name
    ]


def entry_made_in_the_admin(name, hour, last_run_at):
    """A crontab entry at `hour`:00 UTC every day, last sent at `last_run_at`."""
    return PeriodicTask.objects.create(
        name=name,
        task="jobs.noop",
        args=f'["{name}"]',
        crontab=CrontabSchedule.objects.create(minute="0", hour=str(hour), timezone="UTC"),
        last_run_at=last_run_at,
    )


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_runs_missed_while_beat_was_down_run_once_when_it_is_back(broker, beats):
    first = beats.start()
    wait_for(lambda: len(sent_slots(broker, SWEEPER)) >= 2, message="the sweeper, sent twice")
    # Two daily entries whose last two runs, yesterday's and today's, were missed: an hour ago,
    # and six hours ago (django-celery-beat's own scheduler does not even load that one at
    # this hour, celery/django-celery-beat#894). Made in the admin now: beat reads them at once.
    now = timezone.now()
    for name, hours_ago in (("an-hour-ago", 1), ("six-hours-ago", 6)):
        entry_made_in_the_admin(name, (now.hour - hours_ago) % 24, now - timedelta(days=2))
    for name in ("an-hour-ago", "six-hours-ago"):
        wait_for(lambda name=name: sent_slots(broker, name), message=f"{name}'s catch-up")
    first.kill()  # SIGKILL, seconds after those sends: nothing written on the way out
    killed_at = datetime.now(UTC)
    before = sent_slots(broker, SWEEPER)
    time.sleep(3.5)  # three sweeps missed

    restarted_at = datetime.now(UTC)
    second = beats.start()
    wait_for(lambda: len(sent_slots(broker, SWEEPER)) > len(before), message="a sweep, once back")
    back_at = datetime.now(UTC)
    time.sleep(1.5)
    second.kill()

    # Each daily entry: one catch-up, for the latest time it missed; not sent again after the
    # kill (django-celery-beat writes last_run_at every 3 minutes: it would send it again).
    for name, hours_ago in (("an-hour-ago", 1), ("six-hours-ago", 6)):
        slots = sent_slots(broker, name)
        assert len(slots) == 1, (name, slots)
        due_at = (now - timedelta(hours=hours_ago)).replace(minute=0, second=0, microsecond=0)
        assert datetime.fromisoformat(slots[0]) == due_at, "the latest missed time, not yesterday's"
    assert "Sending due task an-hour-ago" not in second.log()
    # The sweeper: no slot twice; once back, one sweep at once, none for the slots it missed.
    sweeps = [datetime.fromisoformat(slot) for slot in sent_slots(broker, SWEEPER)]
    assert len(sweeps) == len(set(sweeps)), Counter(sweeps).most_common(3)
    # (Read from two queues, live and dead-lettered: in time order by slot, not as read.)
    after = sorted(set(sweeps) - {datetime.fromisoformat(slot) for slot in before})
    assert all(slot > restarted_at - timedelta(seconds=1) for slot in after), (killed_at, after)
    assert after[0] <= back_at


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_a_second_beat_sends_nothing_twice(broker, beats):
    first, second = beats.start(), beats.start()
    wait_for(
        lambda: "sent already" in first.log() + second.log(),
        message="both beats to be sending",
    )
    time.sleep(4)
    first.kill()
    second.kill()

    slots = sent_slots(broker, SWEEPER)
    assert len(slots) >= 4
    assert Counter(slots).most_common(1)[0][1] == 1, Counter(slots).most_common(3)
    # Both took part: each sent some of them, and each found some taken by the other.
    for beat in (first, second):
        assert "Sending due task publish-jobs-the-broker-missed" in beat.log()

"""Running ffmpeg and ffprobe on files we are handed: no shell, a deadline, a memory ceiling,
and no ffmpeg that outlives its job.

media_jobs/video.py decides what to run (which demuxer, which filters); this module runs it:

- from an argument list, never through a shell, with a path passed as `file:<path>`
  (`file_url`), so a file name is never read as an option or a URL;
- within a Deadline shared by every run of one job, and killed with its process group when it
  runs past it, or when the task is stopped while waiting for it: the soft time limit raises
  SoftTimeLimitExceeded in the middle of the wait, the hard one sends the worker process
  SIGTERM (which billiard turns into SystemExit), and `run` kills ffmpeg on its way out;
- when the worker process dies without a word (SIGKILL: billiard's second try at a hard time
  limit, the OOM killer), the kernel kills ffmpeg (`_limit_child`);
- under an address-space ceiling, so a file whose header lies about its frame size cannot make
  ffmpeg take the machine's memory.

Its failures are VideoRejected (a PermanentError) with a sentence for staff, except a process
that could not be started at all (a TransientError: not the video's fault).
"""

import ctypes
import io
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from jobs.errors import PermanentError, TransientError

INSTALL_HINT = (
    "videos cannot be processed on this server: ffmpeg is not installed (run "
    "scripts/ensure-ffmpeg.sh as root, or sudo apt-get install -y --no-install-recommends ffmpeg)"
)


class VideoRejected(PermanentError):
    """A file we make no poster or preview of. `str(exc)` says why, in words for staff."""


class TooSlow(VideoRejected):
    """ffmpeg ran past the time allowed for a video and was stopped."""


class ToolFailed(VideoRejected):
    """ffmpeg or ffprobe gave up on the file; `detail` is what it said."""

    def __init__(self, doing, detail):
        super().__init__(f"{doing} failed: {detail}")
        self.detail = detail


class FfmpegMissing(PermanentError):
    """ffmpeg or ffprobe is not installed: no video can be checked or processed here."""

    def __init__(self, message=INSTALL_HINT):
        super().__init__(message)


@dataclass(frozen=True)
class Ffmpeg:
    """How to run ffmpeg here: the two programs, and what one run of them may use."""

    ffmpeg: str
    ffprobe: str
    threads: int = 1  # a media worker runs a job per core: one job, one core
    memory_bytes: int | None = None  # address-space ceiling of each run


def find_ffmpeg(ffmpeg="ffmpeg", ffprobe="ffprobe", **options):
    """An Ffmpeg with both programs found on the PATH; raises FfmpegMissing otherwise."""
    found = shutil.which(ffmpeg), shutil.which(ffprobe)
    if not all(found):
        raise FfmpegMissing()
    return Ffmpeg(*found, **options)


class Deadline:
    """The time every ffmpeg and ffprobe run of one job may take together."""

    def __init__(self, seconds):
        self.seconds = seconds
        self._at = time.monotonic() + seconds

    def left(self):
        return self._at - time.monotonic()


def file_url(path):
    """`file:` + the absolute path: never mistaken for an option ("-x.mp4") or another protocol."""
    return f"file:{os.path.abspath(path)}"


# --- running ffmpeg ---------------------------------------------------------------------------


def run(args, ff, *, deadline, doing, output_limit=None):
    """Run ffmpeg or ffprobe (`args`, no shell) within `deadline`; return what it wrote to stdout.

    Its output goes to temporary files, not pipes: nothing to deadlock on and nothing held in
    memory but what we read back. It runs in a session of its own, so killing its process
    group reaches anything it started.
    """
    timeout = deadline.left()
    if timeout <= 0:
        raise too_slow(deadline, doing)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=partial(_limit_child, os.getpid(), ff.memory_bytes),
            )
        except FileNotFoundError:
            raise FfmpegMissing() from None
        except (
            OSError
        ) as exc:  # no process could be started (EAGAIN, ENOMEM): not the video's fault
            raise TransientError(f"could not start {Path(args[0]).name}: {exc}") from exc
        try:
            returncode = process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            raise too_slow(deadline, doing) from None
        except BaseException:
            # The task is being stopped (SoftTimeLimitExceeded, or the SystemExit of the hard
            # time limit's SIGTERM, raised in the middle of the wait): no ffmpeg may keep
            # running for a job gone.
            _kill(process)
            raise
        if returncode != 0:
            raise ToolFailed(doing, _failure(returncode, err))
        if output_limit is not None and out.tell() > output_limit:
            raise VideoRejected(f"{doing} failed: the file describes itself at absurd length")
        out.seek(0)
        return out.read()


def too_slow(deadline, doing):
    return TooSlow(
        f"processing the video took longer than the {deadline.seconds:g} s allowed "
        f"({doing} was stopped): try a shorter or smaller video"
    )


def _kill(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()  # reaped: no zombie either


# What ffmpeg puts before its messages: "[mov,mp4,m4a @ 0x5581...] " or "file:/some/path: ".
# Staff need the error, not our paths and pointers.
MESSAGE_PREFIX = re.compile(r"^(\[[^\]]*\]\s*|file:\S*:\s*)+")


def _failure(returncode, err):
    """ffmpeg's last two error lines, or the signal it died of (a crash)."""
    if returncode < 0:
        return f"it was killed by {signal.Signals(-returncode).name}"
    err.seek(0, io.SEEK_END)
    err.seek(max(0, err.tell() - 4096))
    lines = [
        MESSAGE_PREFIX.sub("", line).strip()
        for line in err.read().decode(errors="replace").splitlines()
    ]
    said = list(dict.fromkeys(line for line in lines if line))[-2:]
    return "; ".join(said) or f"exit code {returncode}"


# prctl(PR_SET_PDEATHSIG) exists on Linux only; elsewhere the deadline and the soft time limit
# still stop ffmpeg, but a worker process killed outright leaves it running to its end.
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
PR_SET_PDEATHSIG = 1


def _limit_child(parent_pid, memory_bytes):
    """Runs in the child between fork and exec: system calls only, nothing that takes a lock.

    - The kernel kills the child when the process that started it dies: a worker process
      killed with SIGKILL runs no Python code of ours to do it.
    - A memory ceiling: a file whose header lies about its frame size cannot make ffmpeg
      take the machine's memory (it fails to allocate, and says so).
    """
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before the line above took effect
            os._exit(1)
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

"""The JSON control files of the demo's stand-in services (the SMTP sink, the supplier site).

People edit them by hand while the service runs, and the service reads them at every message or
request: so reading never fails (a file missing, half-typed or not a JSON object reads as {}),
and writing replaces the whole file at once.
"""

import json
import os
import tempfile
from pathlib import Path


def read_json_object(path):
    """The JSON object in the file at `path`; {} if there is none or it cannot be read."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json_atomically(path, data):
    """Write `data` to `path` as JSON (what JSON lacks, such as Decimal, as text)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Beside the target, then renamed over it: a service reading at any moment sees the old
    # file or the new one, never half of one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise

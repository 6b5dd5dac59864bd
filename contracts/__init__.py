"""The events the shop and the warehouse service exchange: schemas, envelope, topology, and the
consumer both build on (consuming.py).

Both sides import this package and nothing of each other; it imports neither side. See
README.md here for the envelope, the versioning rules and how a version 2 is rolled out.
"""

from contracts.events import (
    CONTENT_TYPE,
    ContractError,
    Event,
    known_versions,
    new_event,
    parse,
    problem_with,
    require_schemas,
)

__all__ = [
    "CONTENT_TYPE",
    "ContractError",
    "Event",
    "known_versions",
    "new_event",
    "parse",
    "problem_with",
    "require_schemas",
]

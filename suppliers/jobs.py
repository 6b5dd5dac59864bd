"""The kind of job this app runs, with the words the staff pages use for it."""

from jobs.kinds import JobKind

# One job per run of a supplier: see scraping.py for why not one per page.
SUPPLIER_FETCH = JobKind("supplier_fetch", "Supplier fetch", doing="fetching", done="fetched")

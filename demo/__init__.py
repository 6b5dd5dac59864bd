"""The demo's stand-ins: what a real deployment gets from elsewhere.

A local SMTP server and its mail viewer (/mailbox/) instead of a mail provider, a local supplier
site instead of a supplier's web shop, knobs that make both misbehave, tasks that misbehave on
purpose (a poison pill, a runaway), and `seed_demo`. The reference apps (jobs, shop,
notifications, media_jobs, suppliers) import nothing from here; production settings do not
install it (DEMO, config/settings.py).
"""

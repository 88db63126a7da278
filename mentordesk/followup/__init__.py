"""Follow-through (SPEC §3 flows 7–10): what the daemon does because time passed.

Every module in this package is imported when the timers start
(``mentordesk.timers.load_followup``) and registers its own steps at import time with
``register_sweep_step`` / ``register_daily`` / ``register_yearly`` — a new module here
is picked up without editing anything else.

    ladder.py   unclaimed requests: bump, tell the mentee, widen, escalate, assign
    terms.py    mentor terms: the renewal reminder and "your term has ended"
"""

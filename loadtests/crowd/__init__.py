"""Show night with locust: one user class per role, a websocket user base, the plan, set-up,
invariants and summary. Entry points: `loadtests/locustfile.py`, `python -m loadtests.shownight`.

| module | what |
|---|---|
| `plan.py` | pure: the plan file (accounts, ids, phase times, rates), bid amounts |
| `tracker.py` | pure: frames → messages, offset gaps, server clocks, auction state, bid clock |
| `wsclient.py` | one websocket under gevent: commands timed, publications counted and timed |
| `base.py` | plan per process, account hand-out, problem+json outcomes, user base classes |
| `viewers` `bidders` `chatters` `shoppers` `sellers` `riders` `whep` (.py) | the roles |
| `setup.py` | data through the public API; optional roles from /openapi.json |
| `invariants.py` | one winner, no oversell, ledger balanced — read back after the run |
| `procwatch.py` | CPU per process group from /proc during the run |
| `summary.py` | pure: locust CSV → the one-page summary |
"""

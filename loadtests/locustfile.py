"""Souk's show night for locust: one user class per role (loadtests/crowd/).

Run it with `python -m loadtests.shownight` (set-up, the run, invariants, summary, clean-up);
by hand, `SOUK_PLAN=<plan.json> locust -f loadtests/locustfile.py --host <url> ...` with a plan
written by that command (`--keep-plan`). Each class's user count comes from the plan."""

from __future__ import annotations

from loadtests.crowd.base import plan
from loadtests.crowd.bidders import Bidder
from loadtests.crowd.chatters import Chatter
from loadtests.crowd.riders import Rider
from loadtests.crowd.sellers import Seller
from loadtests.crowd.shoppers import Shopper
from loadtests.crowd.viewers import Viewer
from loadtests.crowd.whep import WhepViewer

USER_CLASSES = (Viewer, Bidder, Chatter, Shopper, Seller, Rider, WhepViewer)

for _cls in USER_CLASSES:
    _cls.fixed_count = plan().counts.get(_cls.role, 0)

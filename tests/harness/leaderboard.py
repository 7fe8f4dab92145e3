"""The two joins the leaderboard's hidden `among` variable answers with, as its ranking then reads them."""

from __future__ import annotations

INFO_JOIN = "on (namespace, instance, job, user_id) genesys_agent_info"  # a division, team or queue picked
EVERY_AGENT = "on () up"  # all three at All: no info series read

"""Suite-wide settings.

Under CI (``CI`` set), hypothesis runs derandomized so that a run is reproducible from the
commit alone; locally it explores new examples every run and remembers failures in .hypothesis/.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Fixtures shared across the suite: ``pg_schema`` and ``redis_prefix`` (a PostgreSQL schema
# and a Redis key prefix of a test's own).
pytest_plugins = ["tests.support.postgres", "tests.support.redis"]

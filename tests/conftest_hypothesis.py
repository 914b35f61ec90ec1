"""Hypothesis profiles for the security tests (imported by them; not a pytest conftest).

* ``xci-fast``: what the fast suite runs (a few seconds per property).
* ``slow``: the >= 100,000-example run. Selected with ``HYPOTHESIS_PROFILE=slow`` or
  ``-m slow``; tests using it are marked ``slow`` and skipped otherwise (``SLOW_SKIP``).

The slow profile is applied per test (``@settings(SLOW)``), never loaded globally, so
selecting it does not turn every other property test of the suite into a 100k run.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

SLOW_EXAMPLES = int(os.environ.get("XCI_SLOW_EXAMPLES", "100000"))

settings.register_profile(
    "xci-fast",
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "slow",
    max_examples=SLOW_EXAMPLES,
    deadline=None,
    database=None,  # 100k examples would fill the example database with noise
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FAST = settings.get_profile("xci-fast")
SLOW = settings.get_profile("slow")

# A string condition: pytest evaluates it with ``config`` and ``os`` in scope.
SLOW_SKIP = pytest.mark.skipif(
    "os.environ.get('HYPOTHESIS_PROFILE') != 'slow' and 'slow' not in (config.getoption('markexpr') or '')",
    reason="the 100k-example run: select it with -m slow or HYPOTHESIS_PROFILE=slow",
)

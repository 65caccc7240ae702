"""A hung plugin does not hang a Ray grid (issue 15): a method that sleeps or spins, in
the conformance check or in training, becomes a failed record naming the time limit
(the checks of test_timeouts.py, in a file of their own so that the test runner's
workers share the slow hung runs)."""

from __future__ import annotations

import importlib.util

import pytest
from test_timeouts import check_hung_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray"),
]


def test_methods_that_hang_under_ray_are_failed_records_naming_the_limit(
    tiny_config, tmp_path, plugin_site
):
    check_hung_run(["--executor", "ray", "--workers", "2"], tiny_config, tmp_path, plugin_site)

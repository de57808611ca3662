"""Hypothesis profiles for the suite: "ci" (the default) is small and reproducible, "dev"
digs; env HYPOTHESIS_PROFILE picks one."""

import os

from hypothesis import settings

# deadline=None: the first call of a cell and dtype compiles (or loads) its kernels.
settings.register_profile("ci", max_examples=25, derandomize=True, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

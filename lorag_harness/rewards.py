"""Public path of the RL reward functions (they live in :mod:`lorag_harness.serving.rewards`)."""
from lorag_harness.serving.rewards import *  # noqa: F401,F403
from lorag_harness.serving.rewards import __all__  # noqa: F401

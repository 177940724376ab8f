"""Imported once by the fork server of backfill's worker processes (`infra.workers.RouterPool`) before it
forks them: the rule modules, pySigma and the bundled Sigma rules, parsed, so each worker inherits them."""

from __future__ import annotations

import logging

from pipeline import routed  # noqa: F401 (imported for the workers)
from pipeline.rules import builtin_rules
from pipeline.sigma import SigmaLoadError, bundled

try:
    builtin_rules()
    bundled()
except (SigmaLoadError, OSError) as exc:  # a worker loads them itself and reports what is wrong
    logging.getLogger(__name__).debug("preload: %s", exc)

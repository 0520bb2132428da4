"""Bad-data policy: every problem is either a clear error or a counted, logged skip; never a silent drop.

Loaders report each problem (missing or unreadable image, empty report, malformed annotation entry, ...)
to a :class:`ProblemLog`. With ``on_error="raise"`` (the default) the first one raises a
:class:`DataError` naming the dataset, the study and the file. With ``on_error="skip"`` the study is left
out, counted by reason, the first few are logged in full and a per-reason summary is logged at the end,
so a run's log always says how many studies were dropped and why.
"""

from __future__ import annotations

import logging
from collections import Counter

logger = logging.getLogger("rrg_trl.data")

ON_ERROR = ("raise", "skip")


class DataError(ValueError):
    """A study that cannot be used as-is; the message names the study and the file."""


class ProblemLog:
    """Collects data problems under one ``on_error`` policy (``"raise"`` or ``"skip"``).

    Pass your own instance to a loader to read the counts afterwards (``log.counts``, ``log.examples``).
    """

    def __init__(self, on_error: str = "raise", max_logged: int = 5):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.on_error = on_error
        self.max_logged = max_logged
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        self.kept: Counter[str] = Counter()

    @property
    def skipped(self) -> int:
        return sum(self.counts.values())

    def report(self, source: str, study_id: str, reason: str, detail: str, file: str | None = None) -> None:
        """Raise (``on_error="raise"``) or record a skip of ``study_id`` for ``reason``."""
        where = f" [{file}]" if file else ""
        message = f"{source} study {study_id!r}: {detail}{where}"
        if self.on_error == "raise":
            raise DataError(
                f"{message} (reason: {reason}; pass on_error='skip' to skip and count such studies)"
            )
        self.counts[reason] += 1
        seen = self.examples.setdefault(reason, [])
        if len(seen) < self.max_logged:
            seen.append(message)
            logger.warning("skipping %s", message)
        elif len(seen) == self.max_logged:
            seen.append("...")
            logger.warning("further %r skips are counted but not logged one by one", reason)

    def summarise(self, source: str) -> None:
        """Log one line with how many studies were kept and skipped, per reason."""
        kept = sum(self.kept.values())
        if self.counts:
            reasons = ", ".join(f"{r}={n}" for r, n in sorted(self.counts.items()))
            logger.warning(
                "%s: kept %d studies, skipped %d (on_error='skip'): %s", source, kept, self.skipped, reasons
            )
        else:
            logger.info("%s: kept %d studies, none skipped", source, kept)

"""Names kept for one release after a rename: they work and warn (``DeprecationWarning``)."""

from __future__ import annotations

import warnings

REMOVED_IN = "0.3"


def warn(message: str, *, stacklevel: int = 3) -> None:
    """A ``DeprecationWarning`` saying ``message`` and when the old form goes, pointed at the
    caller of the function that calls this (``stacklevel``)."""
    warnings.warn(
        f"{message} (deprecated in 0.2, removed in {REMOVED_IN}; see CHANGELOG.md, "
        "'Migrating from 0.1')",
        DeprecationWarning,
        stacklevel=stacklevel,
    )

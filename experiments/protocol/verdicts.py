"""Pre-registered verdicts: one primary condition per claim, judged against a threshold.

A claim's primary condition is an interval (over seeds) and a practical-significance
threshold fixed before the run, e.g. "heavy ball reaches the target at least 20%
sooner: the paired ratio of steps is below 0.8". Its status:

- **supported**: the whole interval lies on the claim's side of the threshold;
- **not supported**: the whole interval lies on the other side;
- **inconclusive**: the interval straddles the threshold;
- **depends**: only where the claim itself names a condition (a batch size, a noise
  level) and the data support it on one side of that condition and not on the other.

Secondary conditions are reported beside the primary one and never change the status.
Textbook checks (a theorem on quadratics, an algebraic identity) are judged the same way
but labelled **check passed** / **check failed**: they test the implementation, not the
claim.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..protocol.stats import Interval

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, DEPENDS = (
    "supported",
    "not supported",
    "inconclusive",
    "depends",
)
CHECK_PASSED, CHECK_FAILED = "check passed", "check failed"
EMPIRICAL = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, DEPENDS)
BELOW, ABOVE = "below", "above"


@dataclasses.dataclass(frozen=True)
class Condition:
    """A sentence about the data, the estimate it rests on and the threshold it needs.

    ``side`` says where the claim wants the estimate: ``"below"`` or ``"above"``
    ``threshold``. ``status`` is derived: supported / not supported / inconclusive.
    """

    text: str
    estimate: Interval
    threshold: float
    side: str

    def __post_init__(self):
        if self.side not in (BELOW, ABOVE):
            raise ValueError(f"side must be {BELOW!r} or {ABOVE!r}; got {self.side!r}.")

    @property
    def status(self) -> str:
        """From the interval and the threshold; an estimate that is a bound (censored runs,
        ``Interval.bound``) keeps only the status its bound guarantees, else inconclusive."""
        e, t = self.estimate, self.threshold
        if self.side == BELOW:
            status = SUPPORTED if e.high < t else NOT_SUPPORTED if e.low >= t else INCONCLUSIVE
        else:
            status = SUPPORTED if e.low > t else NOT_SUPPORTED if e.high <= t else INCONCLUSIVE
        # a lower bound (the truth is at least the estimate) can only confirm "above"
        safe = {"": (SUPPORTED, NOT_SUPPORTED), "both": ()}.get(e.bound)
        if safe is None:
            rises = e.bound == "lower"
            safe = (SUPPORTED,) if rises == (self.side == ABOVE) else (NOT_SUPPORTED,)
        return status if status in safe else INCONCLUSIVE

    def sentence(self) -> str:
        bound = {
            "lower": "; a lower bound: censored runs",
            "upper": "; an upper bound: censored runs",
            "both": "; censored runs in both arms",
        }.get(self.estimate.bound, "")
        return f"{self.text}: {self.estimate} ({self.side} {self.threshold:g} needed{bound})"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A claim's status, the primary condition(s) it follows from, and the secondary ones."""

    status: str
    reason: str
    primary: tuple[Condition, ...]
    secondary: tuple[Condition, ...] = ()
    check: bool = False  # a textbook check of the implementation, not empirical evidence


def judge(primary: Condition, secondary: Sequence[Condition] = ()) -> Verdict:
    """The verdict of one primary condition; ``secondary`` conditions are reported only."""
    status = primary.status
    return Verdict(
        status, f"Primary: {primary.sentence()} -> {status}.", (primary,), tuple(secondary)
    )


def judge_depends(named: dict[str, Condition], secondary: Sequence[Condition] = ()) -> Verdict:
    """A claim whose statement names a condition (e.g. the batch size): one primary
    condition per side of it (``{"batch 32": ..., "batch 2048": ...}``).

    All supported: supported; all not supported: not supported; some supported and some
    not: depends (naming where it holds); otherwise (some inconclusive, none against
    the others): inconclusive.
    """
    if not named:
        raise ValueError("judge_depends needs at least one named condition; got none.")
    statuses = {name: c.status for name, c in named.items()}
    values = set(statuses.values())
    if values == {SUPPORTED}:
        status = SUPPORTED
    elif values == {NOT_SUPPORTED}:
        status = NOT_SUPPORTED
    elif SUPPORTED in values and NOT_SUPPORTED in values:
        status = DEPENDS
    else:
        status = INCONCLUSIVE
    parts = [
        (c.sentence() if c.text.startswith(name) else f"{name}: {c.sentence()}")
        + f" -> {statuses[name]}"
        for name, c in named.items()
    ]
    holds = [name for name, s in statuses.items() if s == SUPPORTED]
    where = f" Holds for {', '.join(holds)} only." if status == DEPENDS else ""
    return Verdict(
        status,
        "Primary, per condition named by the claim: " + "; ".join(parts) + "." + where,
        tuple(named.values()),
        tuple(secondary),
    )


def judge_all(named: dict[str, Condition], secondary: Sequence[Condition] = ()) -> Verdict:
    """A claim with several parts, each with its primary condition, that holds only if all
    do: all supported -> supported; any not supported -> not supported; otherwise
    inconclusive. Every part's status is stated in the reason."""
    if not named:
        raise ValueError("judge_all needs at least one named condition; got none.")
    statuses = {name: c.status for name, c in named.items()}
    values = set(statuses.values())
    status = (
        SUPPORTED
        if values == {SUPPORTED}
        else NOT_SUPPORTED
        if NOT_SUPPORTED in values
        else INCONCLUSIVE
    )
    parts = [f"{name}: {c.sentence()} -> {statuses[name]}" for name, c in named.items()]
    return Verdict(
        status,
        "Primary, every part of the claim: " + "; ".join(parts) + ".",
        tuple(named.values()),
        tuple(secondary),
    )


def judge_check(conditions: Sequence[Condition]) -> Verdict:
    """A textbook check: passes when every condition is supported (a theorem leaves no
    room for "inconclusive": a check that is not clearly met fails)."""
    if not conditions:
        raise ValueError("a check needs at least one condition; got none.")
    failed = [c for c in conditions if c.status != SUPPORTED]
    status = CHECK_FAILED if failed else CHECK_PASSED
    reason = "; ".join(
        f"{c.sentence()} -> {'met' if c.status == SUPPORTED else 'not met'}" for c in conditions
    )
    return Verdict(status, reason + ".", tuple(conditions), (), check=True)


def exact(value: float) -> Interval:
    """A deterministic number (a seed-free toy, an identity) as a zero-width interval."""
    return Interval(float(value), float(value), float(value), 1)

"""When an upstream's quota window ends, learned from its answers. Pure: fed with the moments a
request left and its answer came back (this process's monotonic clock) and the quota headers
read from it (``core.quota_headers``), it says when the window in force ends.

Fixed windows ("50 per 5 s", GitHub's "5000 per hour") are announced as a count left and a
reset. The count is exact; the reset is fuzzy by a second or more:

- resets are whole seconds on the wire, rounded up by some servers and truncated by others;
- an epoch reset (``X-RateLimit-Reset: 1767225600``) is read on the server's clock, which may
  be seconds away from ours. Its ``Date`` header bounds the difference: the server's clock read
  ``Date`` (truncated to the second) at some moment between sending and receiving, so each
  answer says ``Date - received <= skew < Date + 1 - sent``; the bounds of many answers meet;
- a delay (``X-RateLimit-Reset: 3``, IETF ``t=3``) counts from when the server answered,
  somewhere between sending and receiving.

So the end is an interval, ``end``: from the announcements, and from being served (an answer
counted in the window in force says it had not ended when the request left: end > sent; the
first answer counted in a later window says it had ended when that answer came back:
end <= received). A caller may burst the window's count and must then wait until ``end.hi``:
after that no call can meet the old window.

A second or two of waiting per window would waste most of a one-second window, so the clock also
*guesses*. Fixed windows of length ``W`` follow each other, so the narrowed end of one window,
shifted by ``W``, says where the next one ends (``W`` from the IETF policy's ``w``, the spacing of
epoch resets, or the longest delay announced). A guess is only ever tested by a *probe*: a call
of the old window's quota kept back for it (``keep_back``) and sent at the guessed moment. It is
answered in the old window (the kept call was due anyway: the end is later) or in the new one
(the burst may begin at once); either way no 429, and the interval narrows. Two calls are kept
back while the guess is wide (a probe at its middle, then at its end), one while it is narrow;
after ``TRUSTED_AFTER`` windows that began exactly where the narrow guess said, none: the burst
itself begins at the guessed end. A window that begins elsewhere (a 429, an answer of the old
window after the guessed end) drops the guess and its trust.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from .quota_headers import Quota

__all__ = ["Answer", "Span", "Verdict", "WindowClock"]

# Announced seconds are whole: the truth lies within this much either side.
ROUNDING = 1.0
# The narrowest a guess is worth making, in seconds, and as a share of the window.
# Acting on a guess is safe whatever its width (its end is a certain bound, shifted along the
# grid); the width only says how late after a window's true beginning its burst may start.
MIN_PRECISION = 0.01
PRECISION_SHARE = 0.25
MAX_PRECISION = 5.0
# Windows that must begin where a narrow guess said before the guess is acted on without a probe.
TRUSTED_AFTER = 2


@dataclass(frozen=True, slots=True)
class Span:
    """The closed interval ``[lo, hi]`` of monotonic seconds."""

    lo: float
    hi: float

    @property
    def width(self) -> float:
        """``hi - lo``."""
        return self.hi - self.lo

    @property
    def mid(self) -> float:
        """The middle."""
        return (self.lo + self.hi) / 2

    def meet(self, other: Span) -> Span | None:
        """The intersection, or None when the two do not overlap."""
        lo, hi = max(self.lo, other.lo), min(self.hi, other.hi)
        return Span(lo, hi) if lo <= hi else None

    def shift(self, seconds: float) -> Span:
        """The same interval ``seconds`` later."""
        return Span(self.lo + seconds, self.hi + seconds)


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer, as the window clock needs it.

    ``sent`` / ``received``: monotonic seconds the request left and its answer came back;
    ``wall_offset``: the caller's wall clock minus its monotonic clock (to place epoch moments);
    ``throttled``: a 429.
    """

    sent: float
    received: float
    wall_offset: float
    quota: Quota
    throttled: bool = False


class Verdict(Enum):
    """Which window an answer was counted in, relative to the one in force."""

    NEW = "new"
    """A later window: the one in force has ended, its count is fresh."""
    SAME = "same"
    """The window in force."""
    STALE = "stale"
    """An earlier window (a late answer): it says nothing about the current one."""


class WindowClock:
    """One upstream key's quota windows: the end of the one in force (``end``), their length once
    known (``window``), and when to probe (``probe_at``). See the module docstring.

    ``probe=False`` keeps nothing back and never probes (several processes sharing one count
    would each keep the same call back): the count is spent, then waited out to ``end.hi``.
    """

    def __init__(self, *, probe: bool = True) -> None:
        self.probe = probe
        self.window: float | None = None
        """Seconds from one window's end to the next, once known."""
        self.window_source = ""
        """Where ``window`` came from: ``policy`` (IETF ``w``), ``epoch`` or ``delay``."""
        self.end: Span | None = None
        """When the window in force ends, for certain somewhere in here (None: no answer yet)."""
        self.windows = 0
        """Windows begun so far."""
        self.trusted = False
        """The guess has held long enough to act on without probing."""
        self._id: float | None = None  # the current window's epoch reset, when the dialect sends one
        self._skew = Span(-math.inf, math.inf)  # the server's wall clock minus ours
        self._phase: Span | None = None  # a past window's end, narrowed: with ``window``, a grid
        self._slot = 0  # which grid slot (phase + slot * window) the window in force ends in
        self._longest_delay = 0.0
        self._rounds_down = False  # a delay of 0 was announced: resets are truncated
        self._last_sent = -math.inf  # the latest request whose answer set ``_last_remaining``
        self._last_remaining: float | None = None
        self._probes = 0  # probes sent in the window in force
        self._keep = 0  # calls kept back for probes when the window in force began
        self._probe_out: float | None = None  # when the unanswered probe left
        self._optimistic: float | None = None  # the end if resets are never early: first probe
        self._announced_optimistic: float | None = None
        self._held = 0  # windows in a row that began where a narrow guess said
        self._guess_hi: float | None = None  # the narrow guess's end when the window began

    # -- evidence -------------------------------------------------------------------------------
    def on_answer(self, answer: Answer) -> Verdict:
        """Take one answer's evidence; say which window it was counted in."""
        quota = answer.quota
        if quota.server_date is not None:
            self._learn_skew(answer, quota.server_date)
        if quota.window:
            self._set_window(quota.window, "policy")
        if self._probe_out is not None and answer.sent >= self._probe_out:
            self._probe_out = None  # the probe (or a call sent after it) is answered
        announced = self._announced(answer)
        verdict = self._classify(answer, announced)
        if verdict is Verdict.NEW:
            self._begin(answer, announced)
        elif verdict is Verdict.SAME:
            self._narrow(answer, announced)
        if verdict is not Verdict.STALE and answer.sent >= self._last_sent and quota.remaining is not None:
            self._last_sent, self._last_remaining = answer.sent, quota.remaining
        return verdict

    def _learn_skew(self, answer: Answer, date: float) -> None:
        this = Span(
            date - answer.received - answer.wall_offset, date + 1.0 - answer.sent - answer.wall_offset
        )
        # Bounds that disagree mean a clock was stepped (NTP): start again from this answer.
        self._skew = self._skew.meet(this) or this

    def _announced(self, answer: Answer) -> Span:
        """When this answer's window ends, by what it announces and by its being served."""
        quota = answer.quota
        epoch = quota.reset_epoch if quota.reset_epoch is not None else quota.retry_epoch
        if epoch is not None:
            skew = self._skew if math.isfinite(self._skew.width) else Span(0.0, 0.0)
            # Server moment ``epoch`` is our wall moment ``epoch - skew``, give or take rounding.
            at = epoch - answer.wall_offset
            span = Span(at - ROUNDING - skew.hi, at + ROUNDING - skew.lo)
            optimistic: float | None = at - skew.lo  # exact, or rounded up (GitHub's way)
        else:
            delay = quota.reset_after if quota.reset_after is not None else quota.retry_after
            if delay is None:
                return Span(answer.sent, math.inf)
            self._learn_delay(delay)
            down = ROUNDING if self._rounds_down else 0.0
            # ``delay`` counts from the server's answer, somewhere between sent and received.
            span = Span(answer.sent + delay - ROUNDING + down, answer.received + delay + ROUNDING)
            optimistic = None if self._rounds_down else answer.received + delay
        self._announced_optimistic = optimistic
        # Served in this window (a 429 too: it was counted against it), so it had not ended
        # when the request left.
        lo = max(span.lo, answer.sent)
        return Span(lo, max(lo, span.hi))

    def _learn_delay(self, delay: float) -> None:
        if delay == 0:
            self._rounds_down = True  # a reset rounded up is never 0 while it is still ahead
        self._longest_delay = max(self._longest_delay, delay)
        if self.window_source in ("", "delay"):
            # The longest delay is announced just after a window begins: the window's length
            # (one second short if the server truncates). Only a guess: see the module docstring.
            length = math.ceil(self._longest_delay) + (1 if self._rounds_down else 0)
            self._set_window(max(1.0, float(length)), "delay")

    def _classify(self, answer: Answer, announced: Span) -> Verdict:
        end = self.end
        if end is None:
            return Verdict.NEW
        quota = answer.quota
        if quota.reset_epoch is not None and self._id is not None:
            if quota.reset_epoch > self._id + 0.5:
                return Verdict.NEW
            if quota.reset_epoch < self._id - 0.5:
                return Verdict.STALE
            return Verdict.SAME
        if answer.sent > end.hi or announced.lo > end.hi:
            return Verdict.NEW  # it left after the window in force had certainly ended
        if answer.received < end.lo and announced.hi < end.lo:
            return Verdict.STALE  # served before the window in force could have begun
        # More left after a later request than after an earlier one: the count was refilled.
        refilled = (
            answer.sent >= self._last_sent
            and quota.remaining is not None
            and self._last_remaining is not None
            and quota.remaining > self._last_remaining
        )
        return Verdict.NEW if refilled and not answer.throttled else Verdict.SAME

    def _begin(self, answer: Answer, announced: Span) -> None:
        previous = self.end
        if previous is not None:
            ended = previous.meet(Span(-math.inf, answer.received))
            if ended is None:  # it ended before we thought it could: trust only this answer
                ended = Span(answer.received, answer.received)
                self._forget_guess()
            self._judge_guess(ended)
            self._remember(ended)
            epoch = answer.quota.reset_epoch
            if epoch is not None and self._id is not None and epoch > self._id:
                gap = epoch - self._id
                if self.window_source != "policy" and (self.window in (None, 0) or gap < self.window - 0.5):
                    self._set_window(gap, "epoch")
        self.end = announced
        if self.window and self.window_source in ("policy", "epoch"):
            # A window of known length began before this answer was served: it ends at most
            # ``window`` after the answer came back, however fuzzy the announcement.
            self.end = announced.meet(Span(-math.inf, answer.received + self.window)) or announced
        self._id = answer.quota.reset_epoch
        self._probes = 0
        self._optimistic = self._announced_optimistic
        if self._phase is not None and self.window is not None:
            # The first grid slot ending after this window's first call left (the one that just
            # ended is slot 0).
            self._slot = max(1, math.floor((answer.sent - self._phase.hi) / self.window) + 1)
        guess = self.guess()
        self._guess_hi = guess.hi if guess is not None and guess.width <= self.precision else None
        self._keep = self._to_keep()
        self.windows += 1

    def _narrow(self, answer: Answer, announced: Span) -> None:
        assert self.end is not None
        narrowed = self.end.meet(announced)
        if narrowed is None:  # the announcement moved (a clock estimate, a new policy): take it
            narrowed = announced
        if answer.throttled or (self._guess_hi is not None and answer.sent > self._guess_hi):
            # The old window outlived the guess: it was wrong, and must be learned again.
            self._forget_guess()
        self.end = narrowed
        if self._announced_optimistic is not None and self._optimistic is not None:
            self._optimistic = min(self._optimistic, self._announced_optimistic)

    def _judge_guess(self, ended: Span) -> None:
        """A window ended within ``ended``: did it end where the narrow guess said?"""
        if self._guess_hi is not None and ended.lo <= self._guess_hi + self.precision:
            self._held += 1
            self.trusted = self._held >= TRUSTED_AFTER
        else:
            self._held = 0
            self.trusted = False

    def _forget_guess(self) -> None:
        self._phase = None
        self._held = 0
        self.trusted = False
        self._guess_hi = None

    def _set_window(self, seconds: float, source: str) -> None:
        if (seconds, source) == (self.window, self.window_source):
            return
        if self.window is not None and abs(seconds - self.window) > 1e-9:
            self._forget_guess()  # a grid of another spacing
        self.window, self.window_source = seconds, source

    def _remember(self, ended: Span) -> None:
        """The window in force ended within ``ended``: the grid's phase, from now on slot 0."""
        if self.window is not None and self._phase is not None:
            predicted = self._phase.shift(self._slot * self.window)
            ended = predicted.meet(ended) or ended
        self._phase, self._slot = ended, 0

    # -- decisions ------------------------------------------------------------------------------
    @property
    def precision(self) -> float:
        """How narrow a guess must be to be acted on: a quarter of the window, within 10 ms and 5 s."""
        return max(MIN_PRECISION, min(MAX_PRECISION, PRECISION_SHARE * (self.window or 1.0)))

    def guess(self) -> Span | None:
        """Where the window in force ends by the grid (within ``end``), None without a grid."""
        end, phase, window = self.end, self._phase, self.window
        if end is None or phase is None or window is None or self._slot < 1 or not math.isfinite(end.hi):
            return None
        return end.meet(phase.shift(self._slot * window))

    def _to_keep(self) -> int:
        """Calls of a new window's count to keep back for probes: 2 while the guess is wide, 1
        while it is narrow but not trusted, 0 once trusted (or when ``end`` is known well)."""
        end = self.end
        if not self.probe or end is None or not math.isfinite(end.hi) or end.width <= self.precision:
            return 0
        if self.trusted:
            return 0
        guess = self.guess()
        return 1 if guess is not None and guess.width <= self.precision else 2

    @property
    def keep_back(self) -> int:
        """Calls of the window's count still kept back for probes (not to be spent otherwise)."""
        return max(0, self._keep - self._probes)

    @property
    def keep_next(self) -> int:
        """Calls to keep back of the next window's count, assumed before its first answer: as
        many as it may want (its first answer sets the real number); none when this window
        wanted none (its end was known well enough without probing)."""
        return 0 if not self.probe or self.trusted or self._keep == 0 else 2

    def resume_at(self) -> float | None:
        """When the window in force is over and the next one's count may be spent: ``end.hi``,
        or the narrow guess's end once trusted. None when no end is known."""
        end = self.end
        if end is None or not math.isfinite(end.hi):
            return None
        if self.trusted and self.probe:
            guess = self.guess()
            if guess is not None and guess.width <= self.precision:
                return guess.hi
        return end.hi

    def probe_at(self) -> float | None:
        """When to send the next probe of the window in force, if it wants one: the middle of a
        wide guess, then its end; the end of a narrow one; the middle of ``end`` without one."""
        keep = self._keep
        if self._probes >= keep or self._probe_out is not None:
            return None  # none left, or the last one is still out: its answer places the next
        if self._last_remaining is None or self._last_remaining < 1:
            return None  # nothing was kept back after all (spent before the quota was known)
        assert self.end is not None
        within = self.guess() or self.end
        optimistic = self._optimistic
        if (
            self._probes == 0
            and optimistic is not None
            and within.lo < optimistic < within.hi - self.precision
        ):
            return optimistic  # exact for windows on whole seconds with resets rounded up
        if within.width <= self.precision or (within is not self.end and self._probes >= keep - 1):
            return within.hi
        return within.mid

    def probe_sent(self, now: float) -> None:
        """A probe of the window in force left at ``now``."""
        self._probes += 1
        self._probe_out = now
        self._optimistic = None

    def __repr__(self) -> str:
        end = "unknown" if self.end is None else f"[{self.end.lo:.3f}, {self.end.hi:.3f}]"
        window = f"{self.window:g}s ({self.window_source})" if self.window else "unknown"
        return f"<WindowClock end={end} window={window} windows={self.windows} trusted={self.trusted}>"

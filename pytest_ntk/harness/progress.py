"""Showing long work while it runs, without ``-v``: which claim, which stage, for how long.

A cold audit can spend minutes in one stage of one claim (training fifty networks, say). pytest
itself prints nothing then, and the run looks hung. :class:`Progress` keeps a handle on the real
standard output, taken when the plugin is configured -- before pytest redirects it to capture
each test's output -- and a background ticker writes there:

- **on a terminal**: a live line under pytest's progress line, updated every second once a stage
  has run for ``LIVE_AFTER_S`` (``⏳ claim: stage  42s``), erased when the stage ends (the cursor
  goes back to the end of pytest's line, so pytest's dots continue where they were);
- **elsewhere** (CI logs, files): plain lines only for long stages -- one when a stage has run
  ``PLAIN_AFTER_S``, one every ``PLAIN_EVERY_S`` after that, and one when it ends -- so a short run
  prints nothing extra and a long one never looks hung;
- **under pytest-xdist** the controller does the same per worker from the claims' start events
  (which claim runs on which worker, for how long; the stages are inside the workers).

With ``-v`` the plugin prints every stage as it ends instead, and with ``-s`` (no capture) or
``-q -q`` nothing is drawn. Nothing here changes a result: it only writes to the terminal.

**How much is left.** A computation that works through parts (trials, chunks of an ensemble) says
so with :func:`advance` (claim suites: :meth:`pytest_ntk.harness.suite.SuiteRun.advance`): after
``done`` of ``total`` parts the running stage shows ``done/total`` and an estimate of the time
left, ``elapsed * (total - done) / done`` with ``elapsed`` measured from the start of that
computation (the stage's start, or the previous report of another computation in the same stage;
parts of equal cost assumed: the estimate is a guide, not a promise). On a terminal the live line carries it; elsewhere
each call (of a computation with more than one part) in a stage that has run ``PLAIN_AFTER_S``
writes one plain line (with ``-v``: every such call), so a long run logs a line per part with its
elapsed time and the estimate.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time

__all__ = ["Progress", "advance"]

LIVE_AFTER_S = 2.0
PLAIN_AFTER_S = 60.0
PLAIN_EVERY_S = 300.0
_TICK_S = 1.0


#: the session's ticker, for :func:`advance` (the latest one configured in this process)
_ACTIVE: "Progress | None" = None


def advance(done: int, total: int, what: str = "") -> None:
    """``done`` of ``total`` parts of the running stage are finished (see the module docstring).

    Safe to call anywhere: outside a pytest-ntk session, or with progress display off, it does nothing.
    """
    if _ACTIVE is not None:
        _ACTIVE.advance(int(done), int(total), str(what))


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """The ticker (see the module docstring). ``stage()`` is the recorders' ``on_stage`` callback."""

    def __init__(self, config):
        self.config = config
        self.verbose = config.getoption("verbose") > 0 and not hasattr(config, "workerinput")
        self.enabled = (config.getoption("verbose") in (0, -1)
                        and getattr(config.option, "capture", "fd") != "no"
                        and not getattr(config.option, "collectonly", False))
        self._out = None
        self.tty = False
        if self.enabled and not hasattr(config, "workerinput"):
            try:
                self._out = os.fdopen(os.dup(_stdout_fd()), "w", buffering=1, encoding="utf-8", errors="replace")
                self.tty = self._out.isatty() and os.environ.get("TERM") != "dumb"
            except (OSError, ValueError, AttributeError):  # no real stdout (e.g. pytest run from a notebook)
                self._out = None
        self._lock = threading.Lock()
        self._running: dict[str, tuple[str, float, float]] = {}  # key -> (label, start, next plain line)
        self._live = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._parts: dict[str, str] = {}  # key -> "3/5, ~4m10s left"
        self._bases: dict[str, tuple[str, float, float]] = {}  # key -> (what, its start, last report)
        global _ACTIVE
        self._previous, _ACTIVE = _ACTIVE, self  # restored at close (an in-process run inside a session)

    # ------------------------------------------------------------------ events
    def stage(self, claim_id: str, stage: str, seconds: float | None) -> None:
        """A stage started (``seconds`` None) or ended (in this process)."""
        if self.verbose:  # -v: a line per stage as it ends, written past output capture
            key = f"{claim_id}/{stage}"
            with self._lock:  # remembered for advance(); no ticker in this mode
                if seconds is None:
                    self._running[key] = (f"{claim_id}: {stage}", time.monotonic(), math.inf)
                else:
                    self._running.pop(key, None)
                    self._parts.pop(key, None)
                    self._bases.pop(key, None)
            if seconds is not None:
                tr = self.config.pluginmanager.get_plugin("terminalreporter")
                capman = self.config.pluginmanager.get_plugin("capturemanager")
                if tr is not None and capman is not None:
                    with capman.global_and_fixture_disabled():
                        tr.write_line(f"    {claim_id}: {stage} done in {seconds:.2f}s")
            return
        if self._out is None:
            return
        if seconds is None:
            self._begin(f"{claim_id}/{stage}", f"{claim_id}: {stage}")
        else:
            self._end(f"{claim_id}/{stage}", seconds)

    def advance(self, done: int, total: int, what: str = "") -> None:
        """:func:`advance`: attach ``done/total`` and the estimate of what is left to the latest stage."""
        if total <= 0 or done < 0:
            return
        with self._lock:
            if not self._running:
                return
            key = next(reversed(self._running))
            label, start, due = self._running[key]
            now = time.monotonic()
            elapsed = now - start
            # the estimate counts from the start of this computation: the stage's start, or the last
            # report of a different computation in the same stage (a stage may run several in turn)
            last_what, base, last = self._bases.get(key, (what, start, start))
            if last_what != what:
                base = last
            left = f", ~{_fmt((now - base) * (total - done) / done)} left" if 0 < done < total else ""
            note = f"{what + ' ' if what else ''}{done}/{total}{left}"
            self._parts[key] = note
            self._bases[key] = (what, base, now)
            if self.tty and not self.verbose:
                self._draw()
                return
        # a line only for a computation of several parts (a lone "1/1" says nothing the stage's own
        # lines do not), and outside -v only once the stage is long
        if total > 1 and (self.verbose or (self._out is not None and elapsed >= PLAIN_AFTER_S)):
            self._line(f"{label}: {note} (elapsed {_fmt(elapsed)})")

    def _line(self, text: str) -> None:
        if self.verbose:
            tr = self.config.pluginmanager.get_plugin("terminalreporter")
            capman = self.config.pluginmanager.get_plugin("capturemanager")
            if tr is not None and capman is not None:
                with capman.global_and_fixture_disabled():
                    tr.write_line(f"    {text}")
        else:
            with self._lock:
                self._plain(text)

    def claim_started(self, nodeid: str, label: str, worker: str) -> None:
        """xdist controller: a worker started a claim."""
        if self._out is not None:
            self._begin(nodeid, f"{label} [{worker}]")

    def claim_ended(self, nodeid: str) -> None:
        if self._out is not None and nodeid in self._running:
            self._end(nodeid, time.monotonic() - self._running[nodeid][1])

    def close(self) -> None:
        global _ACTIVE
        if _ACTIVE is self:
            _ACTIVE = self._previous
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            self._clear_live()
            self._running.clear()
        if self._out is not None:
            try:
                self._out.close()
            except OSError:
                pass
            self._out = None

    # ------------------------------------------------------------------ internals
    def _begin(self, key: str, label: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._running[key] = (label, now, now + PLAIN_AFTER_S)
        if self._thread is None:
            self._thread = threading.Thread(target=self._tick, name="pytest-ntk progress", daemon=True)
            self._thread.start()

    def _end(self, key: str, seconds: float) -> None:
        with self._lock:
            entry = self._running.pop(key, None)
            self._parts.pop(key, None)
            self._bases.pop(key, None)
            if entry is None:
                return
            if self.tty:
                if self._running:
                    self._draw()
                else:
                    self._clear_live()
            elif seconds >= PLAIN_AFTER_S:
                self._plain(f"{entry[0]}: done in {_fmt(seconds)}")

    def _tick(self) -> None:
        while not self._stop.wait(_TICK_S):
            with self._lock:
                if not self._running:
                    continue
                now = time.monotonic()
                if self.tty:
                    if any(now - start >= LIVE_AFTER_S for _, start, _ in self._running.values()):
                        self._draw()
                    continue
                for key, (label, start, due) in list(self._running.items()):
                    if now >= due:
                        note = f" ({self._parts[key]})" if key in self._parts else ""
                        self._plain(f"{label}: running for {_fmt(now - start)}{note}")
                        self._running[key] = (label, start, now + PLAIN_EVERY_S)

    def _plain(self, text: str) -> None:
        """One line of its own (after pytest's unfinished progress line, if any)."""
        self._write(("\n" if self._pytest_column() else "") + f"    [pytest-ntk] {text}\n")

    def _draw(self) -> None:
        """Write (or rewrite) the live line under pytest's current line."""
        now = time.monotonic()
        parts = [f"{label}  {_fmt(now - start)}" + (f" ({self._parts[key]})" if key in self._parts else "")
                 for key, (label, start, _) in self._running.items()]
        columns = _columns()
        text = ("⏳ " + " | ".join(parts))[: max(10, columns - 1)]
        if not self._live:
            if self._pytest_column() >= columns:
                return  # pytest's line wrapped: no safe place for a live line
            self._write("\n")
            self._live = True
        self._write("\r\x1b[2K" + text)

    def _clear_live(self) -> None:
        """Erase the live line and put the cursor back at the end of pytest's line."""
        if not self._live:
            return
        column = self._pytest_column()
        self._write("\r\x1b[2K\x1b[1A" + (f"\x1b[{column}C" if column else ""))
        self._live = False

    def _pytest_column(self) -> int:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        tw = getattr(tr, "_tw", None)
        return int(getattr(tw, "width_of_current_line", 0) or 0)

    def _write(self, text: str) -> None:
        try:
            self._out.write(text)
            self._out.flush()
        except (OSError, ValueError):
            pass


def _stdout_fd() -> int:
    """The file descriptor pytest's terminal writes to (1, unless sys.stdout is a real file elsewhere)."""
    try:
        return sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a capture object (e.g. an in-process run)
        return 1


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80

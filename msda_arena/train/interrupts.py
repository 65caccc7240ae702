"""Tell the user's Ctrl-C apart from a ``KeyboardInterrupt`` that plugin code raised.

A real Ctrl-C must stop the whole grid; a method that raises ``KeyboardInterrupt``
(or calls ``sys.exit``) has only failed its own cell. Python cannot tell the two
apart from the exception alone, so :func:`watching` installs a SIGINT handler that
records each interrupt before raising ``KeyboardInterrupt``; :func:`from_user` then
says which kind an exception is::

    with interrupts.watching():
        try:
            method.masks(lam, h, w, g)
        except KeyboardInterrupt as exc:
            if interrupts.from_user(exc):
                raise  # the user pressed Ctrl-C
            ...  # the method raised it: a failed cell

Signals reach only the main thread, so :func:`watching` is a no-op elsewhere, and a
``KeyboardInterrupt`` seen in another thread never comes from the user. This module
must stay free of torch (the CLI imports it before torch).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["from_user", "requested", "watching"]

_requested = False
_depth = 0  # how many watching() blocks are active in the main thread


def requested() -> bool:
    """Whether a SIGINT (Ctrl-C) arrived while the innermost :func:`watching` was active.

    Cleared when a :func:`watching` block is entered; it stays set after the block
    ends, so code that catches the ``KeyboardInterrupt`` can still ask.
    """
    return _requested


def from_user(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``KeyboardInterrupt`` raised by the user's Ctrl-C.

    Inside :func:`watching` (main thread) that is the case only when a SIGINT was
    recorded; in any other thread never (signals reach only the main thread). In the
    main thread with nothing watching, the origin is unknown and the interrupt is
    taken to be the user's, so that Ctrl-C is never swallowed.
    """
    if not isinstance(exc, KeyboardInterrupt):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    return _requested if _depth else True


@contextmanager
def watching() -> Iterator[None]:
    """Record every SIGINT while the block runs, then raise ``KeyboardInterrupt`` as usual.

    Clears :func:`requested` on entry and restores the previous SIGINT handler on exit.
    A previous handler installed by the application (not Python's default) is still
    called after the interrupt is recorded, so graceful-stop handlers keep working; a
    SIGINT that was ignored (``SIG_IGN``) stays ignored. Blocks nest. Outside the main
    thread this is a no-op, since Python runs signal handlers only in the main thread.
    """
    global _requested, _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: FrameType | None) -> Any:
        global _requested
        _requested = True
        if callable(previous) and previous is not signal.default_int_handler:
            return previous(signum, frame)
        raise KeyboardInterrupt

    _requested = False
    install = previous is not signal.SIG_IGN
    if install:
        signal.signal(signal.SIGINT, handler)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if install:
            # None: a handler installed outside Python; the default is the closest we can do.
            signal.signal(
                signal.SIGINT, previous if previous is not None else signal.default_int_handler
            )

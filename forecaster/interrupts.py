"""Ctrl-C and SIGTERM outside the live loop: one line and exit 128 + the signal, never a traceback.

Standard library only: __main__ imports this before anything heavy, so that a signal during the
seconds of importing Hydra and JAX is answered too. The live and facts loops install their own
asyncio handlers once the stream starts (forecaster/sources/feed.py), which finish the current
candle instead.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

SIGNAL_EXIT_BASE = 128  # a process ended by signal N exits 128 + N, as shells report it
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A KeyboardInterrupt that remembers which signal raised it (a plain one is SIGINT)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def interrupt_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C (finally blocks run) instead of killing the process outright."""
    signal.signal(signal.SIGTERM, raise_interrupted)


def exit_interrupted(
    exc: KeyboardInterrupt, where: str, outcome: str = "", *, at_once: bool = False
) -> NoReturn:
    """Print `forecaster: interrupted WHERE (SIGNAL)OUTCOME` and exit 128 + the signal.

    `at_once` skips the interpreter's exit: a KeyboardInterrupt that crossed an import can leave
    CPython set to end by re-sending itself SIGINT, which would turn exit 130 into death by signal.
    """
    signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
    print(f"forecaster: interrupted {where} ({signal.Signals(signum).name}){outcome}", file=sys.stderr)
    if at_once:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(SIGNAL_EXIT_BASE + signum)
    sys.exit(SIGNAL_EXIT_BASE + signum)


def hold_signals() -> None:
    """SIGINT and SIGTERM wait from now until release_signals(), then arrive as usual.

    For Hydra's composition of the config: a KeyboardInterrupt raised inside OmegaConf's context
    managers can leave a half-built node whose clean-up fails with an unrelated AttributeError (a
    traceback instead of one line). Held, the signal arrives once the config is built.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends, then arrive as usual.

    For jaxlib's native start-up: an exception raised by a signal handler inside it crosses C++
    code, which aborts the whole process (std::terminate) instead of unwinding.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)

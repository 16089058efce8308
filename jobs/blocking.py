"""Blocking batch work (a file writer's CPU-bound step) run off the event loop.

The worker's loop also carries the job's heartbeat and every other running job's progress;
a writer that turns thousands of cells into XML in Python would hold them all up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


async def off_loop(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `func` in a thread. If the job is cancelled meanwhile, the call is let finish
    before unwinding, so whatever closes or deletes the file next never races a thread
    still writing to it."""
    task = asyncio.ensure_future(asyncio.to_thread(func, *args, **kwargs))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise

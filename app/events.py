"""The API process's one Redis pub/sub listener, fanned out to websocket subscribers.

A connection per websocket client would not scale, so each process subscribes once and
hands every event to the in-memory queues of the subscribers that want it. When the
listener loses Redis it reconnects by itself and tells every subscriber to resynchronise
from PostgreSQL, the source of truth, so nothing missed while it was away stays missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobs.lifecycle import is_final

log = logging.getLogger(__name__)

Event = Mapping[str, Any]
RESYNC: Event = {"resync": True}
"""Sentinel queued to every subscriber after the listener (re)connects."""


class Subscription:
    """A bounded queue of events for one subscriber.

    A slow reader must not hold up the others or grow without bound: when full, the oldest
    non-final event is dropped. Final events are never dropped.
    """

    def __init__(self, wants: Callable[[Event], bool], maxsize: int) -> None:
        self.wants = wants
        self.maxsize = maxsize
        self._events: deque[Event] = deque()
        self._ready = asyncio.Event()
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if event is not RESYNC and not self.wants(event):
            return
        if len(self._events) >= self.maxsize:
            for i, queued in enumerate(self._events):
                if queued is RESYNC or not is_final(queued):
                    del self._events[i]
                    self.dropped += 1
                    break
        self._events.append(event)
        self._ready.set()

    async def get(self) -> Event:
        while not self._events:
            self._ready.clear()
            await self._ready.wait()
        return self._events.popleft()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()


class EventBus:
    def __init__(self, redis: Redis, channel: str, *, queue_size: int = 1000) -> None:
        self.redis = redis
        self.channel = channel
        self.queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="event-bus")
        await asyncio.wait_for(self.connected.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.contextmanager
    def subscribe(self, wants: Callable[[Event], bool]) -> Iterator[Subscription]:
        sub = Subscription(wants, self.queue_size)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def dispatch(self, event: Event) -> None:
        for sub in list(self._subscribers):
            sub.offer(event)

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if self.connected.is_set():
                    self.dispatch(RESYNC)
                self.connected.set()
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None or message["type"] != "message":
                        continue
                    try:
                        event = json.loads(message["data"])
                    except (TypeError, ValueError):
                        log.warning("dropping malformed event on %s", self.channel)
                        continue
                    self.dispatch(event)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("event listener lost Redis (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

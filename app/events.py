"""The API process's one Redis pub/sub listener, fanned out to websocket subscribers.

A connection per websocket client would not scale, so each process subscribes once and
hands every event to the in-memory queues of the subscribers that want it.

Redis is the fast path; the change log in PostgreSQL is the truth (jobs.changes). Every
logged event carries its change number, and the listener delivers them in that order
without a gap: the next number goes out at once; a number ahead of the next (an event lost
while Redis was down, published by a process killed before it could, or merely overtaken
by another process's) makes it read the log from the last number it delivered and
dispatch what it missed, in order, before going on. After reconnecting to Redis it does
the same, so a subscriber that stays connected through an outage misses nothing. Progress
ticks are not in the log; they pass straight through once the change they build on is out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError

from app.db import SessionFactory
from jobs.change_feed import log_end, pages
from jobs.lifecycle import is_final

log = logging.getLogger(__name__)

Event = Mapping[str, Any]


class Subscription:
    """A bounded queue of events for one subscriber.

    A slow reader must not hold up the others or grow without bound: when full, the oldest
    non-final event is dropped. Final events are never dropped.

    `deliver`, when the subscriber sets it, handles an event on the spot instead of waking
    the reader (a thousand task wake-ups per event were most of a fan-out's cost): it is
    offered an event only while the reader waits in `get` with nothing queued, so it never
    overtakes an event the reader has yet to finish, and returns False to leave the event
    to the reader after all.
    """

    def __init__(self, wants: Callable[[Event], bool], maxsize: int) -> None:
        self.wants = wants
        self.maxsize = maxsize
        self._events: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._waiting = False
        self.dropped = 0
        self.deliver: Callable[[Event], bool] | None = None

    def offer(self, event: Event) -> None:
        if not self.wants(event):
            return
        deliver = self.deliver
        if deliver is not None and self._waiting and not self._events and deliver(event):
            return
        if len(self._events) >= self.maxsize:
            for i, queued in enumerate(self._events):
                if not is_final(queued):
                    del self._events[i]
                    self.dropped += 1
                    break
        self._events.append(event)
        self._ready.set()

    async def get(self) -> Event:
        while not self._events:
            self._ready.clear()
            self._waiting = True
            try:
                await self._ready.wait()
            finally:
                self._waiting = False
        return self._events.popleft()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()


class FeedPosition:
    """Where one subscriber's feed stands, so replay and live events meet without a seam.

    `start(horizon)`: logged changes up to `horizon` were covered by a replay (as current
    states), so their live copies are dropped. Each job's newest version is remembered
    (for the last `memory` jobs), so a late progress tick never overwrites newer state.
    Each event goes out with the cursor of the feed so far (never lower than the last one
    sent), so a client that keeps the last cursor it got resumes exactly after it. An event
    whose own number is that cursor goes out as the very object it came as, so every
    subscriber handed it shares one (resolvers.shared_events executes it once for them).
    """

    def __init__(self, after: int | None, memory: int = 10_000) -> None:
        self.cursor = after or 0
        self.horizon = after or 0
        self.memory = memory
        self._versions: OrderedDict[str, int] = OrderedDict()

    def start(self, horizon: int) -> None:
        self.horizon = max(self.horizon, horizon)

    def verdict(self, event: Event) -> bool | None:
        """What `accept` would do with `event`, changing nothing: None to skip it, True to
        send it as the very object, False to send a copy with the feed's cursor."""
        seq = int(event["change_seq"])
        if event.get("logged", True) and seq <= self.horizon:
            return None
        if event["version"] <= self._versions.get(str(event["id"]), 0):
            return None
        return isinstance(event, dict) and event["change_seq"] == max(self.cursor, seq)

    def accept(self, event: Event) -> dict[str, Any] | None:
        """The event to send, with its feed cursor in `change_seq`; None to skip it."""
        verdict = self.verdict(event)
        if verdict is None:
            return None
        self.keep(event)
        if verdict:
            assert isinstance(event, dict)
            return event
        return {**event, "change_seq": self.cursor}

    def keep(self, event: Event) -> None:
        """Count `event`, which `verdict` did not skip, as sent."""
        job = str(event["id"])
        self._versions[job] = event["version"]
        self._versions.move_to_end(job)
        if len(self._versions) > self.memory:
            self._versions.popitem(last=False)
        self.cursor = max(self.cursor, int(event["change_seq"]))


class EventBus:
    def __init__(
        self,
        redis: Redis,
        channel: str,
        sessions: SessionFactory,
        *,
        queue_size: int = 1000,
    ) -> None:
        self.redis = redis
        self.channel = channel
        self.sessions = sessions
        self.queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.position: int | None = None
        """The last change number dispatched; None until known."""
        self.catch_ups = 0
        self.after_dispatch: list[Callable[[], None]] = []
        """Called once an event was offered to every subscriber (to settle, in one step,
        what the subscribers' `deliver` did with it)."""

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
        for settle in self.after_dispatch:
            settle()

    # -- ordering -------------------------------------------------------------------------

    async def receive(self, event: Event) -> None:
        """One event from Redis: dispatch it in change order, catching up on a gap first."""
        seq = event.get("change_seq")
        if not isinstance(seq, int):
            log.warning("dropping an event without a change number on %s", self.channel)
            return
        logged = bool(event.get("logged", True))
        if self.position is None:
            # The log was unreachable when the listener started: begin with this event.
            self.position = seq - 1 if logged else seq
        if seq > self.position + (1 if logged else 0):
            await self.catch_up()
        if not logged:
            self.dispatch(event)
        elif seq == self.position + 1:
            self.dispatch(event)
            self.position = seq

    async def catch_up(self) -> None:
        """Dispatch every change after `position` from the log, in order, retrying until
        PostgreSQL answers (no change can commit while it does not)."""
        delay = 0.1
        while True:
            try:
                await self._read_log()
                return
            except (DBAPIError, OSError) as exc:
                log.warning("event listener cannot read the change log (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _read_log(self) -> None:
        if self.position is None:
            self.position = await log_end(self.sessions)
            return
        self.catch_ups += 1
        async for page in pages(self.sessions, self.position):
            for snap in page.snapshots:
                self.dispatch({**snap, "logged": True})
            self.position = page.position

    # -- the Redis side ---------------------------------------------------------------------

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                # Subscribed first, then read: a change is either in the log read now or
                # its event arrives on the subscription.
                if self.connected.is_set():
                    await self.catch_up()
                else:
                    with contextlib.suppress(DBAPIError, OSError):
                        self.position = await log_end(self.sessions)
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
                    await self.receive(event)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("event listener lost Redis (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

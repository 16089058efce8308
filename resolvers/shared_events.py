"""One execution of a subscription's selection per event, shared by subscribers alike.

A thousand clients watching one job cost a thousand executions of the same selection on
the same event, and a thousand JSON encodings of the same result. Like Hasura's
multiplexed live queries, subscribers whose execution key is the same share one:

- the resolvers yield, for each event, `SharedEvents.root(snapshot)`: one `SharedEvent` per
  snapshot object, so every subscriber handed the same event (the bus dispatches one
  object to all, and a batch of first reads one row; see app.events.FeedPosition) gets the
  same one, with the job built once;
- `SharingExecutor` (resolvers.sharing_executor, graphql-core's per-event execution) keeps
  on it the result of each execution key: the document and operation, the variables, what
  the caller may see (`Caller.visibility_key`) and the public base URL (file links are
  absolute). A later subscriber with that key gets the same result object;
- the websocket handlers encode such a result's payload once (`SharedEvents.message_text`),
  and a live subscription's later events go from the bus straight to its socket with that
  text (resolvers.live_delivery).

A result with errors is never shared: each subscriber's errors go through error processing
(codes, references, logging) of their own, as without sharing. The counters say how many
executions served how many results.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Awaitable, Mapping
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, cast

from graphql import ExecutionResult
from prometheus_client import Counter

from schema.job import Job
from schema.job_types import job_from_snapshot

RECENT = 256
"""Recent events (and shared results) kept; subscribers of one event ask within moments."""


class SharedEvent:
    """One event as every subscriber's root value, with the results executed on it so far."""

    __slots__ = ("_job", "results", "snapshot", "spares", "texts")

    def __init__(self, snapshot: Mapping[str, Any]) -> None:
        self.snapshot = snapshot
        self._job: Job | None = None
        self.results: dict[tuple[Any, ...], ExecutionResult] = {}
        self.spares: dict[tuple[Any, ...], ExecutionResult | Awaitable[ExecutionResult]] = {}
        """Results the live path executed but could not send (with errors, or not ready
        at once): the next subscriber of that key to execute takes it instead, so an event
        costs the executions it did without the live path."""
        self.texts: dict[tuple[Any, ...] | None, str] = {}
        """The payload text of each key's shared result, for the live path."""

    @property
    def job(self) -> Job:
        """Built once, when a subscriber first executes on the event."""
        if self._job is None:
            self._job = job_from_snapshot(dict(self.snapshot))
        return self._job


class SharedEvents:
    """The process's recent events by snapshot identity, and the JSON of shared results."""

    def __init__(self, executions: Counter, results: Counter) -> None:
        self.executions = executions
        self.results = results
        self._events: OrderedDict[int, SharedEvent] = OrderedDict()
        self._texts: OrderedDict[int, tuple[object, str | None]] = OrderedDict()
        self._live_results = 0

    def count_live_result(self) -> None:
        """One shared result sent by the live path; added to `results` at `settle`."""
        self._live_results += 1

    def settle(self) -> None:
        """Count the live path's results of the event just dispatched (app.events
        EventBus.after_dispatch): one counter update per event, not per subscriber."""
        if self._live_results:
            self.results.inc(self._live_results)
            self._live_results = 0

    def of(self, snapshot: Mapping[str, Any]) -> SharedEvent:
        """The shared event of this very object (holding it, so its id is not reused)."""
        key = id(snapshot)
        found = self._events.get(key)
        if found is not None and found.snapshot is snapshot:
            return found
        event = SharedEvent(snapshot)
        _remember(self._events, key, event)
        return event

    def root(self, snapshot: Mapping[str, Any]) -> Job:
        """What a subscription resolver yields for `snapshot`: its `SharedEvent`, typed as
        the Job it stands for, since SharingExecutor executes the selection on that job."""
        return cast(Job, self.of(snapshot))

    def keep(self, event: SharedEvent, key: tuple[Any, ...], result: ExecutionResult) -> None:
        """The result of `key` on `event`, for the next subscriber of that key; its data
        is encoded once, when the first of them is sent."""
        event.results.setdefault(key, result)
        _remember(self._texts, id(result.data), (result.data, None))

    def message_text(self, message: Mapping[str, Any]) -> str | None:
        """The JSON text of a `next`/`data` message whose payload is a shared result, its
        payload encoded once for all; None for any other message (encode it as usual)."""
        payload = message.get("payload")
        if not isinstance(payload, dict) or len(payload) != 1 or "data" not in payload:
            return None
        text = self._payload_text(payload["data"])
        if text is None:
            return None
        before, after = envelope(message)
        return before + text + after

    def payload_text(self, result: ExecutionResult) -> str:
        """The JSON of a shared result's message payload, `{"data": ...}`, encoded once."""
        data = result.data
        text = self._payload_text(data)
        if text is None:  # kept so long ago that its text was forgotten
            text = _dumps({"data": data})
            _remember(self._texts, id(data), (data, text))
        return text

    def _payload_text(self, data: object) -> str | None:
        found = self._texts.get(id(data))
        if found is None or found[0] is not data:
            return None
        text = found[1]
        if text is None:
            text = _dumps({"data": data})
            self._texts[id(data)] = (data, text)
        return text


def envelope(message: Mapping[str, Any]) -> tuple[str, str]:
    """The JSON text of `message` before and after its payload's, as Strawberry's views
    encode a message (compact, keys in the message's order)."""
    keys = list(message)
    cut = keys.index("payload")
    head = "".join(f"{_dumps(key)}:{_dumps(message[key])}," for key in keys[:cut])
    tail = "".join(f",{_dumps(key)}:{_dumps(message[key])}" for key in keys[cut + 1 :])
    return "{" + head + '"payload":', tail + "}"


def _dumps(value: object) -> str:
    """As Strawberry's views encode a message; a string (a key, an id) by the C encoder
    json.dumps itself ends in, without building an encoder for each."""
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    return json.dumps(value, separators=(",", ":"))


def _remember(memo: OrderedDict[int, Any], key: int, value: Any) -> None:
    memo[key] = value
    memo.move_to_end(key)
    if len(memo) > RECENT:
        memo.popitem(last=False)

"""At most one coordinator per queue (per inbox): a lock in Redis with a TTL that its holder renews."""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis
import structlog

from heygemd.cluster.protocol import coordinator_key

# KEYS[1] the lock; ARGV: holder, ttl ms. 1 while this holder has it.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class CoordinatorLock:
    def __init__(self, client: redis.Redis, queue: str, holder: str, ttl_seconds: float) -> None:
        self.client = client
        self.key = coordinator_key(queue)
        self.holder = holder
        self.ttl_ms = int(ttl_seconds * 1000)
        self.ttl_seconds = ttl_seconds
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.log = structlog.get_logger("heygemd.cluster")

    def try_acquire(self) -> bool:
        try:
            return bool(self.client.set(self.key, self.holder, nx=True, px=self.ttl_ms)) or self._still_mine()
        except redis.RedisError:
            return False

    def current_holder(self) -> str | None:
        try:
            value = self.client.get(self.key)
        except redis.RedisError:
            return None
        if not value:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def wait(self, stopping: threading.Event, on_standby: Callable[[str | None], None]) -> bool:
        """Block until this process holds the lock (True), or a stop is asked for (False)."""
        announced = False
        while not stopping.is_set():
            if self.try_acquire():
                return True
            if not announced:
                on_standby(self.current_holder())
                announced = True
            stopping.wait(self.ttl_seconds / 3)
        return False

    def keep(self, on_lost: Callable[[], None]) -> None:
        """Renew every third of the TTL from a thread; ``on_lost`` once another holder has it."""

        def renew() -> None:
            while not self._stop.wait(self.ttl_seconds / 3):
                if not self._still_mine(reacquire=True):
                    holder = self.current_holder()
                    if holder is not None and holder != self.holder:
                        self.log.error("another coordinator holds this queue now; stopping", holder=holder)
                        on_lost()
                        return

        self._thread = threading.Thread(target=renew, name="coordinator-lock", daemon=True)
        self._thread.start()

    def _still_mine(self, reacquire: bool = False) -> bool:
        try:
            if self._renew(keys=[self.key], args=[self.holder, self.ttl_ms]):
                return True
            # a Redis that restarted lost the lock: take it again if nobody else did
            return bool(reacquire and self.client.set(self.key, self.holder, nx=True, px=self.ttl_ms))
        except redis.RedisError:
            return True  # the broker is away: nobody else can take it either; keep going

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._release(keys=[self.key], args=[self.holder])
        except redis.RedisError:
            pass

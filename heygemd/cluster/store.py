"""The tasks' live state in Redis: one hash per task, a heartbeat key per running task.

The hash decides delivery: a worker starts a task only if its hash exists and says QUEUED (one
atomic script), so a message Celery delivers again (a restored message, a Redis that came back) is
never rendered twice under one task id, and a task the coordinator gave up on (it deleted the hash
and enqueued a new one) is skipped. Workers write to a hash only while it exists: a slow, superseded
worker cannot bring a forgotten task back.
"""

from __future__ import annotations

import json
import time

import redis

from heygemd.cluster.protocol import TaskState, TaskView, alive_key, task_key

TASK_TTL_SECONDS = 7 * 24 * 3600  # a hash the coordinator never reads again (its job was removed) goes away

# KEYS[1] the hash; ARGV: worker, now, its host, its GPU. 1 if this worker may start it.
_START = """
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'started', 'worker', ARGV[1], 'started_at', ARGV[2],
           'worker_host', ARGV[3], 'worker_gpu', ARGV[4])
return 1
"""

# KEYS[1] the hash; ARGV: worker, then field/value pairs. Written only if the hash is still this worker's.
_UPDATE = """
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


class TaskStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._start = client.register_script(_START)
        self._update = client.register_script(_UPDATE)

    @classmethod
    def connect(cls, url: str) -> TaskStore:
        return cls(redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=10))

    # -------------------------------------------------------------- the coordinator

    def create(self, task_id: str) -> None:
        key = task_key(task_id)
        self.client.hset(key, mapping={"state": TaskState.QUEUED.value, "enqueued_at": repr(time.time())})
        self.client.expire(key, TASK_TTL_SECONDS)

    def read(self, task_id: str) -> TaskView | None:
        raw = self.client.hgetall(task_key(task_id))
        return TaskView.from_hash(raw) if raw else None

    def alive(self, task_id: str) -> bool:
        return bool(self.client.exists(alive_key(task_id)))

    def forget(self, task_id: str) -> None:
        """The coordinator is done with this task id (ended, or given up on): its worker writes nothing more."""
        self.client.delete(task_key(task_id), alive_key(task_id))

    def cancel(self, task_id: str) -> None:
        self.client.hset(task_key(task_id), "cancel", "1")

    # -------------------------------------------------------------- a worker

    def start(self, task_id: str, worker: str, host: str, gpu: str) -> bool:
        return bool(self._start(keys=[task_key(task_id)], args=[worker, repr(time.time()), host, gpu]))

    def update(self, task_id: str, worker: str, **fields: object) -> bool:
        args: list[str] = [worker]
        for name, value in fields.items():
            args += [name, value if isinstance(value, str) else json.dumps(value)]
        return bool(self._update(keys=[task_key(task_id)], args=args))

    def beat(self, task_id: str, worker: str, ttl_seconds: float) -> bool:
        """Refresh the heartbeat; True when a cancel was asked for this task."""
        self.client.set(alive_key(task_id), worker, px=int(ttl_seconds * 1000))
        return self.client.hget(task_key(task_id), "cancel") is not None

    def end(self, task_id: str, worker: str, state: TaskState, **fields: object) -> bool:
        done = self.update(task_id, worker, state=state.value, ended_at=repr(time.time()), **fields)
        self.client.delete(alive_key(task_id))
        return done

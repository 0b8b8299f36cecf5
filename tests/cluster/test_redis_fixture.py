"""The cluster tests' broker: a real redis-server that answers, and that a restart empties (no persistence)."""

from __future__ import annotations

import redis


def test_redis_server_answers_and_a_restart_empties_it(redis_server) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.set("heygemd:test:restart", "1")
    pid = redis_server.process.pid
    redis_server.restart()
    assert redis_server.process.pid != pid
    client = redis.Redis.from_url(redis_server.url)
    assert client.get("heygemd:test:restart") is None
    assert client.ping()

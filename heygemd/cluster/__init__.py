"""Cluster mode: `heygemd run` coordinates (claims, plans, publishes), `heygemd worker` processes render.

One Celery task per template video, on Redis. The task's live state (who renders it, its progress,
its heartbeat, its outcome) is a Redis hash the worker writes and the coordinator reads; that hash, not
Celery's delivery, decides that a task id is rendered at most once (see store.py).
"""

"""`heygemd web`: the page and JSON API for the people who drop the folders (and their scripts).

A separate process from `heygemd run`: it reads what the service writes (status.json, the
journal, history.jsonl, metrics.json, the outbox and quarantine) and writes only two things:
uploaded jobs, into the inbox by one atomic rename, and requests into control.json. It never
imports the engine's heavy parts (torch, OpenCV): it starts in about a second and a crash or
restart of either process never affects the other.
"""

"""Which file names are media the engine renders from: one list for `heygemd render`, the daemon's
folder contract and its page, docs/folder-contract.md. Suffixes are lower case; callers compare lower-cased names."""

from __future__ import annotations

AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".wma"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".flv", ".mpg", ".mpeg", ".wmv", ".mts", ".ts"})
STILL_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

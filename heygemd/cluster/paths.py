"""Path translation for a worker whose share is mounted elsewhere than the coordinator's."""

from __future__ import annotations

from pathlib import PurePosixPath


class PathMap:
    def __init__(self, prefixes: dict[str, str]) -> None:
        # the longest prefix first: /srv/share/a wins over /srv/share
        self.prefixes = sorted(
            ((PurePosixPath(k), PurePosixPath(v)) for k, v in prefixes.items()),
            key=lambda item: len(item[0].parts),
            reverse=True,
        )

    def local(self, path: str) -> str:
        """The coordinator's ``path`` as this host sees it (unchanged when no prefix matches)."""
        posix = PurePosixPath(path)
        for remote, here in self.prefixes:
            if posix == remote or remote in posix.parents:
                return str(here / posix.relative_to(remote))
        return path

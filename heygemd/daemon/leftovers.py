"""Start-up clean-up: heygemd's own temporary files and folders that a crash (kill -9, power cut) left behind.

Only names of heygemd's temporary convention (heygemd.names) are touched, and only once nobody
writes them any more (heygemd.atomic.is_leftover): another live service's are kept. The inbox is
never cleaned: it belongs to the people who drop jobs, and heygemd writes nothing there.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from heygemd.atomic import CleanUp, remove_leftover_temporaries
from heygemd.daemon.claim import WorkArea
from heygemd.daemon.config import PathsConfig
from heygemd.names import is_heygemd_temporary


def service_folders(paths: PathsConfig, work: WorkArea, extra: Iterable[Path | None] = ()) -> list[Path]:
    """Where heygemd writes under temporary names: the output folders, the state, ``extra``, each job folder of the work area."""
    folders = [
        paths.outbox,
        paths.quarantine,
        paths.archive,
        paths.state,
        *(folder for folder in extra if folder is not None),
    ]
    for job_dir in _folders_in(work.root):
        folders.append(job_dir)
        folders += _folders_in(
            job_dir
        )  # input/ (error.json), failed/ (the audio copy), output/ (output-<owner>/ of an older heygemd)
    return folders


def _folders_in(folder: Path) -> list[Path]:
    try:
        return sorted(entry for entry in folder.iterdir() if entry.is_dir() and not is_heygemd_temporary(entry.name))
    except OSError:
        return []


def clean_leftovers(paths: PathsConfig, work: WorkArea, started_at: float, extra: Iterable[Path | None] = ()) -> CleanUp:
    """Remove the leftovers in service_folders(); ``started_at`` is this process's start (time.time())."""
    return remove_leftover_temporaries(service_folders(paths, work, extra), started_at)

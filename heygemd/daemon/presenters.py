"""The presenter library: ``<paths.presenters>/<name>/*.mp4|mov|jpg ...``, templates a job names instead of carrying.

job.toml: ``presenters = ["anna", "ben/front.mp4"]``. A name alone means every template of that presenter (sorted
by name); ``name/file`` one of them. A job only reads the library: nothing in it is ever moved, archived or
deleted by a job (its templates are fingerprinted at planning like the job's own files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from heygemd.codes import CodedError, ErrorCode
from heygemd.engine.formats import STILL_SUFFIXES, VIDEO_SUFFIXES

TEMPLATE_SUFFIXES = VIDEO_SUFFIXES | STILL_SUFFIXES


class PresenterError(CodedError):
    """A job names the library wrongly: an unknown presenter or file, an empty presenter, a bad name."""


@dataclass(frozen=True)
class PresenterTemplate:
    presenter: str
    path: Path  # inside the library

    @property
    def reference(self) -> str:
        """``anna/front.mp4``: how job.toml names it."""
        return f"{self.presenter}/{self.path.name}"


def _plain(part: str) -> bool:
    return (
        bool(part.strip()) and part not in (".", "..") and not part.startswith(".") and "\\" not in part and "\0" not in part
    )


def check_reference(reference: str) -> tuple[str, str | None]:
    """``"anna"`` -> ("anna", None); ``"ben/front.mp4"`` -> ("ben", "front.mp4"). Raises PresenterError (bad name)."""
    parts = reference.split("/")
    if len(parts) > 2 or not all(_plain(part) for part in parts):
        raise PresenterError(
            f'The presenter name "{reference}" is not a plain name: write "name" for all of a presenter\'s templates '
            'or "name/file.mp4" for one (no "..", no leading dot, no leading "/", at most one "/").',
            code=ErrorCode.PRESENTER_BAD_NAME,
        )
    return parts[0], parts[1] if len(parts) == 2 else None


def presenter_templates(folder: Path) -> list[Path]:
    """The templates in one presenter's folder: plain files with a video or still extension, sorted; links never."""
    found = []
    for entry in sorted(os.scandir(folder), key=lambda item: item.name):
        if entry.name.startswith(".") or entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            continue
        if Path(entry.name).suffix.lower() in TEMPLATE_SUFFIXES and entry.stat(follow_symlinks=False).st_size > 0:
            found.append(Path(entry.path))
    return found


def list_presenters(library: Path) -> list[str]:
    if not library.is_dir():
        return []
    return sorted(entry.name for entry in os.scandir(library) if entry.is_dir(follow_symlinks=False) and _plain(entry.name))


def resolve_presenters(library: Path, references: list[str]) -> list[PresenterTemplate]:
    """Every template the references name, in order, each once. Raises PresenterError with its code."""
    templates: list[PresenterTemplate] = []
    for reference in references:
        name, file_name = check_reference(reference)
        folder = library / name
        if not folder.is_dir() or folder.is_symlink():
            known = list_presenters(library)
            raise PresenterError(
                f'The presenter "{name}" is not in the presenter library {library} '
                f"(it holds: {', '.join(known) if known else 'no presenter yet'}).",
                code=ErrorCode.PRESENTER_UNKNOWN,
            )
        available = presenter_templates(folder)
        if file_name is None:
            if not available:
                raise PresenterError(
                    f'The presenter "{name}" has no template video or still in {folder}.', code=ErrorCode.PRESENTER_EMPTY
                )
            chosen = available
        else:
            chosen = [path for path in available if path.name == file_name]
            if not chosen:
                raise PresenterError(
                    f'The presenter "{name}" has no template "{file_name}" '
                    f"(it has: {', '.join(path.name for path in available) or 'none'}).",
                    code=ErrorCode.PRESENTER_UNKNOWN,
                )
        for path in chosen:
            if all(template.path != path for template in templates):
                templates.append(PresenterTemplate(name, path))
    return templates

"""The error codes: one table in heygemd/codes.py, documented whole in the README, classified for retries."""

from __future__ import annotations

import errno
import re
from pathlib import Path

from heygemd.codes import CODES, ErrorCode, Persistence, code_for_os_error, failure_from_os_error

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def documented_sections(heading: str) -> list[str]:
    """The text under ``heading`` (to the next heading) in the README and in every docs page that has it."""
    sections = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        if heading not in text:
            continue
        section = text[text.index(heading) :]
        end = section.find("\n#", 1)
        sections.append(section if end < 0 else section[:end])
    return sections


def readme_code_table() -> dict[str, str]:
    """The rows of every "### Error codes" table of the README and the docs pages."""
    rows: dict[str, str] = {}
    for section in documented_sections("### Error codes"):
        rows |= dict(re.findall(r"^\| `([a-z_.]+)` \| (permanent|transient) \|", section, flags=re.MULTILINE))
    return rows


def test_the_readme_documents_every_code_with_its_kind_and_nothing_else():
    assert readme_code_table() == {code.value: info.persistence.value for code, info in CODES.items()}


def test_every_code_has_a_summary_and_a_fix():
    for code in ErrorCode:
        assert code.info.summary.endswith(".") and code.info.fix, code


def test_the_environment_is_transient_and_the_input_permanent():
    transient = {code for code in ErrorCode if code.transient}
    assert transient == {
        ErrorCode.DISK_FULL,
        ErrorCode.SHARE_UNAVAILABLE,
        ErrorCode.PROCESS_KILLED,
        ErrorCode.OUT_OF_MEMORY,
        ErrorCode.RENDER_STALLED,
        ErrorCode.RENDER_ENCODER_FAILED,
        ErrorCode.OUTPUT_MISMATCH,
    }
    assert CODES[ErrorCode.INPUT_UNREADABLE].persistence is Persistence.PERMANENT


def test_filesystem_errors_are_classified_by_errno_and_by_what_was_being_done():
    cases = {
        (errno.ENOSPC, False): ErrorCode.DISK_FULL,
        (errno.EDQUOT, False): ErrorCode.DISK_FULL,
        (errno.ENAMETOOLONG, False): ErrorCode.NAME_TOO_LONG,
        (errno.EACCES, True): ErrorCode.INPUT_UNREADABLE,  # the job's own file
        (errno.EACCES, False): ErrorCode.SHARE_UNAVAILABLE,  # the outbox: the operator's to fix, retried
        (errno.EIO, False): ErrorCode.SHARE_UNAVAILABLE,
        (errno.ESTALE, True): ErrorCode.SHARE_UNAVAILABLE,
    }
    for (number, reading_input), code in cases.items():
        assert code_for_os_error(OSError(number, "x"), reading_input=reading_input) is code, (number, reading_input)


def test_a_failure_from_a_filesystem_error_names_the_file_never_its_folder():
    failure = failure_from_os_error(
        OSError(errno.ENOSPC, "No space left on device", "/srv/share/work/123/output-x/a.mp4"), "publishing the results"
    )
    assert failure.code is ErrorCode.DISK_FULL and '"a.mp4"' in failure.reason and "work" not in failure.reason


def test_the_readme_documents_every_exit_code_and_nothing_else():
    from heygemd.exitcodes import ExitCode

    documented = {
        int(number)
        for section in documented_sections("### Exit codes")
        for number in re.findall(r"^\| (\d+) \|", section, flags=re.MULTILINE)
    }
    assert documented == {int(code) for code in ExitCode}

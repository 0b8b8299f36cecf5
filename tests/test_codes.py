"""The error codes: one table in heygemd/codes.py, documented whole in the README, classified for retries."""

from __future__ import annotations

import errno
import re
from pathlib import Path

from heygemd.codes import CODES, ErrorCode, Persistence, code_for_os_error, failure_from_os_error

README = Path(__file__).resolve().parents[1] / "README.md"
DOCS = README.parent / "docs"
CODE_ROW = r"^\| `([a-z_.]+)` \| (permanent|transient) \|"


def readme_code_table() -> dict[str, str]:
    """The README's table of codes, and the code tables of the docs' pages (docs/speech.md: the speech codes)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Error codes") :]
    section = section[: section.index("\n### ", 1)]
    table = dict(re.findall(CODE_ROW, section, flags=re.MULTILINE))
    for page in sorted(DOCS.glob("*.md")):
        table |= dict(re.findall(CODE_ROW, page.read_text(encoding="utf-8"), flags=re.MULTILINE))
    return table


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

    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Exit codes") :]
    section = section[: section.index("\n## ", 1)]
    documented = {int(number) for number in re.findall(r"^\| (\d+) \|", section, flags=re.MULTILINE)}
    assert documented == {int(code) for code in ExitCode}

"""The error codes: one table in heygemd/codes.py, documented whole in docs/error-codes.md, classified for retries."""

from __future__ import annotations

import errno

from docs_pages import code_name, page, section, table_rows

from heygemd.codes import CODES, ErrorCode, Persistence, code_for_os_error, failure_from_os_error
from heygemd.exitcodes import ExitCode

ERROR_CODES_PAGE = "error-codes.md"
EXIT_CODES_PAGE, EXIT_CODES_HEADING = "cli.md", "## Exit codes"


def documented_codes() -> dict[str, tuple[str, ...]]:
    """Each code of the page's table with its kind, meaning and fix; a code listed twice fails."""
    rows = [(name, tuple(row[1:])) for row in table_rows(page(ERROR_CODES_PAGE)) if (name := code_name(row[0]))]
    documented = dict(rows)
    assert len(documented) == len(rows), "a code is listed twice in docs/error-codes.md"
    return documented


def test_the_docs_list_every_code_with_its_kind_meaning_and_fix_and_nothing_else():
    expected = {code.value: (info.persistence.value, info.summary, info.fix) for code, info in CODES.items()}
    assert documented_codes() == expected, "docs/error-codes.md must list heygemd/codes.py's table, row for row"


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


def test_the_docs_list_every_exit_code_and_nothing_else():
    rows = [row for row in table_rows(section(EXIT_CODES_PAGE, EXIT_CODES_HEADING)) if row[0].isdigit()]
    documented = [int(row[0]) for row in rows]
    assert sorted(documented) == sorted(int(code) for code in ExitCode), "docs/cli.md's exit codes"

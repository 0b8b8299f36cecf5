"""Lifecycle owns the record: no module but lifecycle.py writes a field of a job's or a video's record.

The check reads the source with `ast`. A write is an assignment (plain, augmented or annotated) to
an attribute named like a field of JobRecord, VideoRecord, RetryState or ChangedInputs, on a
receiver that holds a record: a name annotated with one of those types, a loop over a record's
videos, a name bound from ``record.retry`` and the like, or a name the code base keeps for records
(``record``, ``video``). ``setattr`` with a field's name, on anything, counts too.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "heygemd"
JOURNAL = PACKAGE_ROOT / "daemon" / "journal.py"
RECORD_TYPES = frozenset({"JobRecord", "VideoRecord", "RetryState", "ChangedInputs"})
RECORD_NAMES = frozenset({"record", "video"})  # the names the code base gives records
NESTED_RECORDS = frozenset({"retry", "changed_inputs", "videos"})  # a record's fields that hold records
OWNER = PACKAGE_ROOT / "daemon" / "lifecycle.py"
# journal.py's mark_done stamps DONE as the first half of the history's exactly-once write (the
# store's own protocol, repeated by recover_finished at start-up); Lifecycle.done is its one caller.
ALLOWED: frozenset[tuple[str, str]] = frozenset({("journal.py", "mark_done")})


@dataclass(frozen=True)
class RecordWrite:
    path: Path
    line: int
    function: str
    target: str

    def describe(self) -> str:
        return f"{self.path.relative_to(PACKAGE_ROOT.parent)}:{self.line} ({self.function}) writes {self.target}"


def record_fields(journal: Path = JOURNAL) -> frozenset[str]:
    fields: set[str] = set()
    for node in ast.parse(journal.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef) and node.name in RECORD_TYPES:
            fields.update(
                item.target.id for item in node.body if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
            )
    return frozenset(fields)


def _mentions_record_type(annotation: ast.expr | None) -> bool:
    return annotation is not None and any(
        isinstance(node, ast.Name) and node.id in RECORD_TYPES for node in ast.walk(annotation)
    )


def _holds_records(expression: ast.expr, holders: set[str]) -> bool:
    """``record``, ``record.retry``, ``record.videos``, ``job.record.videos``: an expression that is records."""
    if isinstance(expression, ast.Name):
        return expression.id in holders
    if isinstance(expression, ast.Attribute):
        return expression.attr in RECORD_NAMES or (
            expression.attr in NESTED_RECORDS and _holds_records(expression.value, holders)
        )
    return False


def _record_holders(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    holders = set(RECORD_NAMES)
    arguments = function.args
    for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
        if _mentions_record_type(argument.annotation):
            holders.add(argument.arg)
    for _ in range(2):  # a name bound from a holder may hold the next one
        for node in ast.walk(function):
            if isinstance(node, ast.For | ast.comprehension) and isinstance(node.target, ast.Name):
                if _holds_records(node.iter, holders):
                    holders.add(node.target.id)
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                if _holds_records(node.value, holders):
                    holders.add(node.targets[0].id)
            elif (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and _mentions_record_type(node.annotation)
            ):
                holders.add(node.target.id)
    return holders


def _stored_attributes(node: ast.AST) -> list[ast.Attribute]:
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AugAssign | ast.AnnAssign):
        targets = [node.target]
    return [
        sub
        for target in targets
        for sub in ast.walk(target)
        if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store)
    ]


def record_writes(path: Path, fields: frozenset[str]) -> list[RecordWrite]:
    writes: list[RecordWrite] = []
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        holders = _record_holders(function)
        for node in ast.walk(function):
            for attribute in _stored_attributes(node):
                if attribute.attr in fields and _holds_records(attribute.value, holders):
                    writes.append(RecordWrite(path, node.lineno, function.name, ast.unparse(attribute)))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
                name = node.args[1] if len(node.args) > 1 else None
                if not isinstance(name, ast.Constant) or name.value in fields:
                    writes.append(RecordWrite(path, node.lineno, function.name, ast.unparse(node)))
    return sorted(set(writes), key=lambda write: (write.line, write.target))


def writes_outside_the_owner(root: Path = PACKAGE_ROOT, owner: Path = OWNER) -> list[RecordWrite]:
    fields = record_fields()
    return [
        write
        for path in sorted(root.rglob("*.py"))
        if path != owner
        for write in record_writes(path, fields)
        if (path.name, write.function) not in ALLOWED
    ]


def test_only_lifecycle_writes_the_records() -> None:
    writes = [write.describe() for write in writes_outside_the_owner()]
    assert writes == [], "records written outside lifecycle.py:\n" + "\n".join(writes)


def test_lifecycle_itself_is_seen_writing_them() -> None:
    """The check sees the writes it must forbid elsewhere: those of the owner."""
    targets = {write.target for write in record_writes(OWNER, record_fields())}
    assert {"record.phase", "video.status", "record.retry", "state.failures", "record.outbox_path"} <= targets


def test_the_check_sees_each_kind_of_write(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def a(job: JobRecord | None, other):\n"
        "    job.phase = 1\n"  # annotated parameter
        "    other.phase = 2\n"  # not a record: allowed
        "    for clip in job.videos:\n"
        "        clip.status = 3\n"  # a loop over a record's videos
        "    streak = job.retry\n"
        "    streak.failures += 1\n"  # a record's nested record
        "    setattr(other, 'worker', 4)\n"  # setattr by a field's name, on anything
        "def b(view):\n"
        "    record = load()\n"
        "    record.failure = 5\n"  # the code base's name for a record
        "    view.status = 6\n"  # a view model, not a record: allowed
        "    seen[record.job_id] = 7\n",  # a record read as a key: allowed
        encoding="utf-8",
    )
    found = [(write.line, write.target) for write in record_writes(sample, record_fields())]
    assert found == [
        (2, "job.phase"),
        (5, "clip.status"),
        (7, "streak.failures"),
        (8, "setattr(other, 'worker', 4)"),
        (11, "record.failure"),
    ]

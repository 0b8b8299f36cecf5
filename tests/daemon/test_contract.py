"""The folder contract on real folders: what a job may hold and the plain-language reasons when it may not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from docs_pages import page

from heygemd.daemon.config import Language
from heygemd.daemon.contract import (
    ContractViolation,
    is_hidden_job_folder,
    is_ignored_name,
    is_temporary_name,
    plan_job,
)
from heygemd.engine import LoopPolicy, RenderOptions
from heygemd.engine.formats import AUDIO_SUFFIXES, STILL_SUFFIXES, VIDEO_SUFFIXES
from heygemd.names import NAME_MAX_BYTES, name_bytes


def make(folder: Path, files: dict[str, bytes | str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


@pytest.mark.parametrize(
    "name",
    [
        ".DS_Store",
        "._clip.mp4",
        "Thumbs.db",
        "desktop.ini",
        "~$notes.docx",
        ".~lock.a.odt#",
        ".syncthing.a.mp4.tmp",
        "~syncthing~a.mp4.tmp",
        "a.mp4.part",
        "a.PARTIAL",
        "a.crdownload",
        "a.download",
        "x.tmp",
        "@eaDir",
        "__MACOSX",
        ".stfolder",
        ".Trashes",
    ],
)
def test_ignored_names(name):
    assert is_ignored_name(name)


def test_temporary_names_are_the_upload_in_progress_ones():
    assert is_temporary_name("a.mp4.part") and is_temporary_name(".syncthing.v.mp4.tmp")
    assert not is_temporary_name(".DS_Store") and not is_temporary_name("Thumbs.db")
    assert not is_ignored_name("speech.wav") and not is_ignored_name("-dash.mp4")


def test_a_good_job_with_clutter_and_options(tmp_path):
    folder = make(
        tmp_path / "job",
        {
            "Speech.WAV": b"a",
            "front view.MP4": b"v",
            "side.mov": b"v",
            "photo.jpg": b"i",
            ".DS_Store": b"x",
            "Thumbs.db": b"x",
            "._front view.MP4": b"x",
            "job.toml": 'output_folder = "campaign"\n[render]\nloop = "freeze"\ncrf = 23\n'
            '[videos."side.mov"]\noutput_name = "side-en"\nfixed_box = [1, 2, 30, 40]\n',
        },
    )
    plan = plan_job(folder, "job", RenderOptions())
    assert plan.audio.name == "Speech.WAV" and plan.output_folder == "campaign"
    by_name = {video.source.name: video for video in plan.videos}
    assert set(by_name) == {"front view.MP4", "side.mov", "photo.jpg"}
    assert by_name["side.mov"].output_stem == "side-en" and by_name["side.mov"].options.fixed_box == (1, 2, 30, 40)
    assert by_name["front view.MP4"].options.loop is LoopPolicy.FREEZE and by_name["front view.MP4"].options.crf == 23
    assert by_name["front view.MP4"].options.fixed_box is None
    assert plan.warnings == ()


@pytest.mark.parametrize("suffix", sorted(VIDEO_SUFFIXES | STILL_SUFFIXES))
def test_every_template_format_the_engine_renders_is_a_template(tmp_path, suffix):
    """The daemon takes what `heygemd render` takes: .tif/.tiff stills and .flv videos included."""
    folder = make(tmp_path / "job", {"speech.wav": b"a", f"take{suffix.upper()}": b"v"})
    assert [video.source.name for video in plan_job(folder, "job", RenderOptions()).videos] == [f"take{suffix.upper()}"]


@pytest.mark.parametrize("suffix", sorted(AUDIO_SUFFIXES))
def test_every_audio_format_is_the_audio(tmp_path, suffix):
    folder = make(tmp_path / "job", {f"speech{suffix}": b"a", "take.mp4": b"v"})
    assert plan_job(folder, "job", RenderOptions()).audio.name == f"speech{suffix}"


def test_the_folder_contract_page_lists_exactly_the_engine_formats():
    contract = page("folder-contract.md")

    def listed(marker: str) -> set[str]:
        [line] = [line for line in contract.splitlines() if marker in line]
        return {word.rstrip(";),") for word in line.split(marker, 1)[1].split() if word.startswith(".")}

    assert listed("exactly one audio:") == AUDIO_SUFFIXES
    assert listed("one or more templates:") == VIDEO_SUFFIXES
    assert listed("(or stills:") == STILL_SUFFIXES


def test_same_stems_do_not_collide(tmp_path):
    folder = make(tmp_path / "job", {"a.wav": b"a", "take.mp4": b"v", "take.mov": b"v"})
    stems = sorted(video.output_stem for video in plan_job(folder, "job", RenderOptions()).videos)
    assert len(set(stems)) == 2 and "take" in stems


def test_output_names_of_the_longest_template_names_fit(tmp_path):
    ascii_stem, cjk_stem = "t" * 251, "名" * 83 + "xx"  # + ".mp4": 255 bytes each
    folder = make(
        tmp_path / "job",
        {
            "a.wav": b"a",
            f"{ascii_stem}.mp4": b"v",
            f"{ascii_stem[:-1]}T.mov": b"v",  # the same once cut
            f"{cjk_stem}.mp4": b"v",
            f"{cjk_stem}.MOV": b"v",
        },
    )
    stems = [video.output_stem for video in plan_job(folder, "job", RenderOptions()).videos]
    assert len({stem.lower() for stem in stems}) == 4
    for stem in stems:
        assert all(name_bytes(f"{stem}{suffix}") <= NAME_MAX_BYTES for suffix in (".mp4", ".json"))
        assert stem.encode("utf-8").decode("utf-8") == stem
    assert all(stem.startswith("t" * 240) or stem.startswith("名" * 78) for stem in stems)


def test_dot_named_folders_worth_a_warning():
    assert is_hidden_job_folder(".hidden-job") and is_hidden_job_folder(".名前")
    for quiet in (
        ".stfolder",
        ".Trashes",
        ".Trash-1000",
        ".recycle",
        ".snapshot",
        ".AppleDouble",
        ".syncthing.x.tmp",
        ".job.heygemd-0badc0de-1-abcdef.tmp",
        ".job.heygemd-partial-12",
        "job",
    ):
        assert not is_hidden_job_folder(quiet), quiet


BAD = [
    ({}, "empty"),
    ({"speech.wav": b"a"}, "no template video"),
    ({"a.mp4": b"v", "b.mov": b"v"}, "no audio file"),
    ({"a.wav": b"a", "b.txt": b"Hello.", "v.mp4": b"v"}, "one or the other"),
    ({"a.wav": b"a", "v.mp4": b""}, "empty (0 bytes)"),
    ({"a.wav": b"a", "v.flv2": b"v"}, "unsupported files"),
    ({"inner/a.wav": b"a", "inner/v.mp4": b"v"}, "holds only folders"),
    ({"a.wav": b"a", "v.mp4": b"v", "job.toml": "crf = 20\n"}, "job.toml is not valid"),
    ({"a.wav": b"a", "v.mp4": b"v", "job.toml": "[render]\ncrf = 99\n"}, "[render]"),
    ({"a.wav": b"a", "v.mp4": b"v", "job.toml": "[render\n"}, "not valid TOML"),
    ({"a.wav": b"a", "v.mp4": b"v", "job.toml": '[videos."w.mp4"]\ncrf = 20\n'}, "not in the folder"),
    ({"a.wav": b"a", "v.mp4": b"v", "job.toml": 'output_folder = "../x"\n'}, "plain name"),
]


@pytest.mark.parametrize(("files", "reason"), BAD, ids=[reason for _, reason in BAD])
def test_bad_folders_have_a_plain_reason(tmp_path, files, reason):
    folder = make(tmp_path / "job", files)
    with pytest.raises(ContractViolation) as caught:
        plan_job(folder, "job", RenderOptions())
    assert reason in caught.value.reason + " ".join(caught.value.details)


def test_several_audio_files_each_get_every_template_in_their_own_subfolder(tmp_path):
    folder = make(tmp_path / "job", {"en.wav": b"a", "fr.mp3": b"a", "front.mp4": b"v", "side.mp4": b"v"})
    plan = plan_job(folder, "job", RenderOptions())
    assert [video.output_stem for video in plan.videos] == ["en/front", "en/side", "fr/front", "fr/side"]
    assert [(part.audio.name, part.results_subfolder, len(part.videos)) for part in plan.per_source()] == [
        ("en.wav", "en", 2),
        ("fr.mp3", "fr", 2),
    ]
    single = plan_job(make(tmp_path / "one", {"en.wav": b"a", "front.mp4": b"v"}), "one", RenderOptions())
    assert single.per_source() == [single] and single.videos[0].output_stem == "front"


@pytest.mark.parametrize(
    ("language", "page", "spoken"),
    [
        ('"zh"', Language.ZH, "zh"),
        ('"EN"', Language.EN, "EN"),
        ('"fr"', None, "fr"),
        ('"auto"', None, "auto"),
        (None, None, None),
    ],
)
def test_job_toml_language_is_the_scripts_and_the_results_pages_when_the_page_speaks_it(tmp_path, language, page, spoken):
    """One key, the job's language: a script is spoken in it; index.html follows it for en and zh only."""
    toml = f"language = {language}\n" if language else ""
    folder = make(tmp_path / "job", {"script.txt": b"Hello.", "front.mp4": b"v", "job.toml": toml})
    plan = plan_job(folder, "job", RenderOptions())
    assert plan.language == page
    assert plan.speech is not None and plan.speech.language == spoken


def test_presenters_from_the_library_join_the_jobs_own_templates(tmp_path):
    library = tmp_path / "presenters"
    make(library / "anna", {"front.mp4": b"v", "side.jpg": b"s", "notes.pdf": b"n", ".hidden.mp4": b"h"})
    make(library / "ben", {"front.mp4": b"v"})
    folder = make(
        tmp_path / "job", {"script.txt": b"Hello.", "own.mp4": b"v", "job.toml": 'presenters = ["anna", "ben/front.mp4"]\n'}
    )
    plan = plan_job(folder, "job", RenderOptions(), presenter_library=library)
    assert [video.output_stem for video in plan.videos] == ["own", "anna-front", "anna-side", "ben-front"]
    assert [plan.template_key(video) for video in plan.videos] == [
        "own.mp4",
        str(library / "anna" / "front.mp4"),
        str(library / "anna" / "side.jpg"),
        str(library / "ben" / "front.mp4"),
    ]
    assert plan.speech is not None and plan.audio.name == "script.txt"


@pytest.mark.parametrize(
    ("presenters", "code"),
    [
        (["nobody"], "presenter.unknown"),
        (["anna/back.mp4"], "presenter.unknown"),
        (["empty"], "presenter.empty"),
        (["../anna"], "presenter.bad_name"),
        (["/anna"], "presenter.bad_name"),
        (["anna/x/front.mp4"], "presenter.bad_name"),
        (["anna/.."], "presenter.bad_name"),
        ([".anna"], "presenter.bad_name"),
    ],
)
def test_presenter_names_are_checked(tmp_path, presenters, code):
    library = tmp_path / "presenters"
    make(library / "anna", {"front.mp4": b"v"})
    (library / "empty").mkdir()
    job_toml = "presenters = [" + ", ".join(f'"{name}"' for name in presenters) + "]\n"
    folder = make(tmp_path / "job", {"a.wav": b"a", "job.toml": job_toml})
    with pytest.raises(ContractViolation) as caught:
        plan_job(folder, "job", RenderOptions(), presenter_library=library)
    assert caught.value.code.value == code


def test_links_are_never_followed(tmp_path):
    outside = make(tmp_path / "outside", {"secret.mp4": b"v"})
    folder = make(tmp_path / "job", {"a.wav": b"a"})
    os.symlink(outside / "secret.mp4", folder / "linked.mp4")
    with pytest.raises(ContractViolation) as caught:
        plan_job(folder, "job", RenderOptions())
    assert "no template video" in caught.value.reason
    assert any("links are never followed" in detail and "linked.mp4" in detail for detail in caught.value.details)


def test_stray_files_and_folders_are_warnings_when_the_job_is_otherwise_good(tmp_path):
    folder = make(tmp_path / "job", {"a.wav": b"a", "v.mp4": b"v", "notes.pdf": b"t", "old/x.mp4": b"v"})
    plan = plan_job(folder, "job", RenderOptions())
    assert len(plan.videos) == 1
    assert any("notes.pdf" in warning for warning in plan.warnings)
    assert any('"old"' in warning for warning in plan.warnings)


def test_the_marker_and_reports_are_not_content(tmp_path):
    folder = make(tmp_path / "job", {"a.wav": b"a", "v.mp4": b"v", "READY": b"", "error.json": b"{}"})
    plan = plan_job(folder, "job", RenderOptions(), marker_name="ready")
    assert plan.warnings == ()

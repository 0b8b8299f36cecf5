"""Names heygemd makes up fit in one directory entry (255 bytes), cut at character boundaries; temporary names follow one convention."""

from __future__ import annotations

import os

import pytest

from heygemd.daemon.contract import is_ignored_name, is_temporary_name
from heygemd.names import (
    NAME_MAX_BYTES,
    download_name,
    extension,
    fit_name,
    machine_tag,
    name_bytes,
    numbered_name,
    parse_temporary_name,
    temporary_name,
)

CJK = "名"  # 3 bytes in UTF-8
EMOJI = "🎬"  # 4 bytes


def test_a_name_that_fits_is_left_alone():
    for name in ("a.mp4", "x" * NAME_MAX_BYTES, CJK * 85, "no extension", ".hidden"):
        assert fit_name(name) == name
        assert fit_name(fit_name(name)) == fit_name(name)


def test_ascii_is_cut_to_255_bytes_keeping_the_extension():
    name = "a" * 300 + ".mp4"
    fitted = fit_name(name)
    assert name_bytes(fitted) == NAME_MAX_BYTES and fitted == "a" * 251 + ".mp4"
    assert fit_name(fitted) == fitted


@pytest.mark.parametrize("pad", [0, 1, 2])
def test_cjk_is_never_cut_inside_a_character(pad):
    name = "x" * pad + CJK * 100 + ".wav"
    fitted = fit_name(name)
    assert fitted.endswith(".wav") and name_bytes(fitted) <= NAME_MAX_BYTES
    assert name_bytes(fitted) > NAME_MAX_BYTES - 3  # as long as whole characters allow
    assert fitted.encode("utf-8").decode("utf-8") == fitted and set(fitted[pad:-4]) == {CJK}


def test_four_byte_emoji_at_the_boundary():
    for pad in range(4):
        fitted = fit_name("e" * pad + EMOJI * 70, keep_suffix="")
        assert name_bytes(fitted) <= NAME_MAX_BYTES < name_bytes(fitted) + 4
        assert set(fitted[pad:]) == {EMOJI}


def test_a_letter_keeps_its_accent_and_an_emoji_sequence_stays_whole():
    accented = "e\u0301"  # e + combining acute: 3 bytes
    fitted = fit_name("x" * 253 + accented * 3, keep_suffix="")
    assert fitted == "x" * 253  # the accent is not split from its letter
    family = "👩\u200d👧"  # woman, zero-width joiner, girl
    fitted = fit_name("y" * 250 + family, keep_suffix="")
    assert fitted == "y" * 250  # no dangling joiner


def test_the_given_suffix_is_kept():
    name = "b" * 255
    assert fit_name(f"{name} (2)", keep_suffix=" (2)") == "b" * 251 + " (2)"
    assert fit_name(f"{name}.zip", keep_suffix=".zip") == "b" * 251 + ".zip"
    assert numbered_name(name, 12, ".zip") == "b" * 246 + " (12).zip"
    assert numbered_name(name, 1) == name and numbered_name("short", 2) == "short (2)"
    with pytest.raises(ValueError):
        fit_name("c" * 300, keep_suffix=".zip")


def test_no_trailing_space_or_dot_after_a_cut():
    assert fit_name("a" * 251 + "  . " + "b" * 10, keep_suffix="") == "a" * 251  # cut right after "  . "


def test_extension():
    assert extension("Side View.MP4") == ".MP4" and extension("job") == "" and extension(".hidden") == ""
    assert extension("a.名前") == "" and extension("v1.2 final cut") == ""


@pytest.mark.parametrize("final", ["voice.wav", "x" * 255, CJK * 85, EMOJI * 63, "job.json", ".writable"])
def test_temporary_names_fit_and_are_never_content(final):
    name = temporary_name(final)
    assert name_bytes(name) <= NAME_MAX_BYTES
    assert name.startswith(".") and is_ignored_name(name) and is_temporary_name(name)
    parsed = parse_temporary_name(name)
    assert parsed is not None and final.startswith(parsed.final) and parsed.checkable and not parsed.resumable
    assert temporary_name(final) != name  # unique per call


def test_download_names_are_stable_and_resumable():
    name = download_name("wav2lip_gan.pth")
    assert name == download_name("wav2lip_gan.pth") and is_temporary_name(name)
    parsed = parse_temporary_name(name)
    assert parsed is not None and parsed.resumable and parsed.pid is None
    assert name_bytes(download_name("z" * 255)) <= NAME_MAX_BYTES


def test_older_temporary_names_are_recognised():
    for legacy, pid in [
        (".job.heygemd-partial-123", 123),
        (".job.zip.heygemd-partial", None),
        (".jobs.json.77.tmp", 77),
        (".out.88.partial.mp4", 88),
        (".k.track.npy.9.partial", 9),
    ]:
        parsed = parse_temporary_name(legacy)
        assert parsed is not None and parsed.pid == pid and not parsed.checkable, legacy
    for other in ("voice.wav", ".DS_Store", "x.tmp", ".syncthing.a.tmp", "job (2)"):
        assert parse_temporary_name(other) is None


def test_machine_tag_is_stable():
    assert machine_tag() == machine_tag() and len(machine_tag()) == 8


def test_a_name_that_is_not_utf8_is_displayed_with_its_bytes_escaped():
    from heygemd.names import display_name, displayable

    odd = os.fsdecode(b"face\xff.mp4")
    assert display_name(odd) == "face\\xff.mp4"
    assert display_name("visage été.mp4") == "visage été.mp4"
    assert displayable({odd: [odd, 1, None]}) == {"face\\xff.mp4": ["face\\xff.mp4", 1, None]}
    display_name(odd).encode("utf-8")  # writable as UTF-8 (JSON, logs, HTML)

"""The page's two languages: every word has both, every error code's plain reason too, and the choice of language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from heygemd.codes import ErrorCode
from heygemd.web.i18n import (
    CODE_TEXTS_ZH,
    EN,
    JS_KEYS,
    MESSAGES,
    ZH,
    Translator,
    choose_language,
    from_accept_language,
    placeholders,
)

WEB = Path(__file__).resolve().parents[2] / "heygemd" / "web"
# t("key") and t('key') in the templates; t("prefix." ~ value) builds keys from a prefix (checked by the prefix).
USED_KEY = re.compile(r"""\bt\(\s*["']([a-z_.]+)["']\s*(\)|,|~)""")
# Keys the code builds: the refusal kinds of WebError and the words of the service's states.
PYTHON_KEY = re.compile(r"""["']((?:upload|csrf|auth|error|presenter|speech)\.[a-z_.]+)["']""")


def test_every_error_code_has_its_plain_reason_and_fix_in_both_languages():
    assert set(CODE_TEXTS_ZH) == set(ErrorCode)
    for code in ErrorCode:
        english, chinese = (code.info.summary, code.info.fix), CODE_TEXTS_ZH[code]
        assert all(english) and all(chinese), code
        assert all(re.search(r"[\u4e00-\u9fff]", text) for text in chinese), code  # written in Chinese
        assert Translator(ZH).code_summary(code) == chinese[0] and Translator(EN).code_summary(code) == english[0]


def test_every_message_has_both_languages_with_the_same_placeholders():
    for key, (english, chinese) in MESSAGES.items():
        assert english.strip() and chinese.strip(), key
        assert placeholders(english) == placeholders(chinese), key
    assert set(JS_KEYS) <= set(MESSAGES)


def test_every_word_the_templates_and_the_code_use_is_in_the_catalogue():
    used: set[str] = set()
    prefixes: set[str] = set()
    for template in (WEB / "templates").glob("*.html"):
        for key, end in USED_KEY.findall(template.read_text(encoding="utf-8")):
            (prefixes if end == "~" else used).add(key)
    for module in WEB.rglob("*.py"):
        used.update(
            key
            for key in PYTHON_KEY.findall(module.read_text(encoding="utf-8"))
            if not key.endswith((".", ".html", ".json"))
        )
    missing = sorted(key for key in used if key not in MESSAGES)
    assert not missing, f"words without their entry: {missing}"
    for prefix in prefixes:
        assert any(key.startswith(prefix) for key in MESSAGES), prefix
    for family, values in {
        "phase.": ["arriving", "queued", "waiting_for_disk", "claimed", "rendering", "waiting_retry", "publishing", "done"],
        "video.": ["pending", "rendering", "ok", "failed"],
        "stage.": ["detect", "render"],
        "status.": ["ok", "partial", "failed"],
        "area.": ["outbox", "quarantine"],
        "loop.": ["pingpong", "loop", "freeze"],
        "blend.": ["feather", "hard"],
    }.items():
        assert all(family + value in MESSAGES for value in values), family
    for state in (
        "starting",
        "loading model",
        "idle",
        "working",
        "waiting for the inbox",
        "waiting for disk space",
        "stopping",
        "stopped",
        "paused",
    ):
        assert Translator(ZH).state(state) != state, state


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", ZH),
        ("zh", ZH),
        ("zh-Hans-CN", ZH),
        ("zh-SG", ZH),
        ("en-US,en;q=0.9", EN),
        ("fr-FR, zh;q=0.5, en;q=0.3", ZH),
        ("fr-FR, en;q=0.9, zh;q=0.5", EN),
        ("zh-TW, en;q=0.8", EN),
        ("de", EN),
        ("", EN),
        ("en;q=0, zh;q=0.1", ZH),
    ],
)
def test_the_language_follows_accept_language(header, expected):
    assert (from_accept_language(header) or EN) == expected


def test_the_parameter_beats_the_cookie_which_beats_the_browser():
    assert choose_language("zh-CN", "en", "en") == ZH
    assert choose_language(None, "zh-CN", "en") == ZH
    assert choose_language("klingon", None, "zh") == ZH
    assert choose_language(None, None, None) == EN


def test_durations_read_naturally_in_both_languages():
    assert Translator(EN).duration(3725) == "1 h 02 min" and Translator(ZH).duration(3725) == "1 小时 02 分"
    assert Translator(EN).duration(65) == "1 min 05 s" and Translator(ZH).duration(4) == "4 秒"

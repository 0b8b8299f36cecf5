"""Path translation for a worker whose mount point of the share differs from the coordinator's."""

from __future__ import annotations

from heygemd.cluster.paths import PathMap


def test_the_longest_matching_prefix_is_translated_and_other_paths_are_left_alone():
    paths = PathMap({"/srv/share": "/mnt/nas", "/srv/share/work": "/fast/work"})
    assert paths.local("/srv/share/work/job-1/input/a.wav") == "/fast/work/job-1/input/a.wav"
    assert paths.local("/srv/share/inbox/x") == "/mnt/nas/inbox/x"
    assert paths.local("/srv/share") == "/mnt/nas"
    assert paths.local("/srv/shared/x") == "/srv/shared/x", "a prefix matches whole path components only"
    assert paths.local("/elsewhere/x") == "/elsewhere/x"


def test_no_map_changes_nothing():
    assert PathMap({}).local("/srv/share/work/a") == "/srv/share/work/a"

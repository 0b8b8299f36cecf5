"""Face-track cache, detection stride, overlapped stages, encoder choice and GPU memory back-off."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch
from media_factory import make_audio, make_video

from heygemd.engine import EngineError, LipSyncEngine, RenderCancelled, RenderOptions
from heygemd.engine.faces import interpolate_stride
from heygemd.engine.ffmpeg_tools import nvenc_usable
from heygemd.engine.pipeline import BackgroundSink, GrowingList, prefetch
from heygemd.engine.track_cache import TrackCache, track_key

SIZE = (192, 192)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    return make_audio(tmp_path_factory.mktemp("speech") / "speech.wav", seconds=0.6)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("template") / "presenter.mp4", seconds=0.6, fps="25", size=SIZE)


# -- face-track cache ------------------------------------------------------------------------------


def test_a_reused_template_runs_no_face_detection(engine_settings, speech, template, tmp_path):
    settings = engine_settings.model_copy(update={"face_cache_dir": tmp_path / "tracks"})
    engine = LipSyncEngine(settings)
    first = engine.render(speech, template, tmp_path / "first.mp4")
    second = engine.render(speech, template, tmp_path / "second.mp4", RenderOptions(pads=(0, 20, 5, 5)))
    assert not first.faces.cache_hit and first.timings.detect > 0
    assert second.faces.cache_hit and second.timings.detect == 0
    assert second.faces.frames_with_face == first.faces.frames_with_face == 15
    assert len(list((tmp_path / "tracks").glob("*.track.npy"))) == 1

    other_detector = LipSyncEngine(settings.model_copy(update={"detect_max_side": 256}))
    assert not other_detector.render(speech, template, tmp_path / "third.mp4").faces.cache_hit


def test_cache_keeps_to_its_size_limit_dropping_the_least_recently_used(tmp_path):
    cache = TrackCache(tmp_path, max_bytes=3500)  # room for three tracks of 1088 bytes
    track = [(1, 2, 30, 40)] * 50 + [None] * 10
    for name in ("old", "middle", "new"):
        cache.store(name, track)
        time.sleep(0.02)
    assert cache.load("old", 60) == track  # touched: now the most recent
    cache.store("newest", track)
    assert cache.load("middle", 60) is None
    assert cache.load("old", 60) == track and cache.load("newest", 60) == track
    assert cache.load("newest", 61) is None, "a shorter cached track does not serve a longer render"


def test_track_key_changes_with_the_detector_settings():
    assert track_key("abc", {"detector": "lbp"}) != track_key("abc", {"detector": "s3fd"})
    assert track_key("abc", {"a": 1, "b": 2}) == track_key("abc", {"b": 2, "a": 1})


# -- detection stride -----------------------------------------------------------------------------


def test_stride_detects_every_kth_frame_and_interpolates(engine_settings, speech, template, tmp_path):
    engine = LipSyncEngine(engine_settings.model_copy(update={"detect_stride": 4}))
    engine.tracker.detector = detector = _SlowDetector(engine.tracker.detector, delay=0)
    report = engine.render(speech, template, tmp_path / "out.mp4")
    assert report.faces.detect_stride == 4 and detector.frames == 4, "frames 0, 4, 8 and 12 of 15"
    assert report.faces.frames_with_face == 15 and report.faces.frames_without_face == 0


def test_interpolate_stride_moves_boxes_linearly_between_samples():
    track = list(interpolate_stride([(0, 0, 10, 10), (4, 8, 14, 18), None], 4, 10))
    assert len(track) == 10
    assert track[2] == (2, 4, 12, 14)
    assert track[5] == (4, 8, 14, 18) and track[7] is None, "the nearer sample decides next to a faceless one"
    assert track[9] is None
    assert list(interpolate_stride([(1, 1, 5, 5)], 3, 3)) == [(1, 1, 5, 5)] * 3
    assert list(interpolate_stride([(1, 1, 5, 5), (3, 3, 7, 7)], 2, 2)) == [(1, 1, 5, 5), (2, 2, 6, 6)]


def test_interpolate_stride_gives_a_frame_as_soon_as_the_next_sample_is_in():
    pulled: list[int] = []

    def samples():
        for number in range(4):
            pulled.append(number)
            yield (number, number, number + 10, number + 10)

    stream = interpolate_stride(samples(), 3, 12)
    assert next(stream) == (0, 0, 10, 10) and pulled == [0]
    assert next(stream) == (0, 0, 10, 10) and pulled == [0, 1], "frame 1 needed sample 1 (frame 3)"


# -- overlapped stages ---------------------------------------------------------------------------


def test_prefetch_keeps_order_and_raises_the_producers_error():
    assert list(prefetch(range(100), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("decoder broke")

    stream = prefetch(failing(), depth=2)
    assert next(stream) == 1
    with pytest.raises(ValueError, match="decoder broke"):
        next(stream)


def _endless(closed: threading.Event):
    """Zeros for ever; sets ``closed`` when closed."""
    try:
        while True:
            yield 0
    finally:
        closed.set()


def test_closing_prefetch_early_stops_the_thread_and_closes_the_source():
    closed = threading.Event()
    before = threading.active_count()
    stream = prefetch(_endless(closed), depth=2)
    next(stream)
    stream.close()
    assert closed.is_set()
    assert threading.active_count() == before


def test_background_sink_delivers_everything_and_reports_a_failure():
    received: list[int] = []
    sink: BackgroundSink[int] = BackgroundSink(received.append, depth=2)
    for item in range(50):
        sink.put(item)
    sink.close()
    assert received == list(range(50))

    def broken(item: int) -> None:
        raise OSError("encoder gone")

    failing: BackgroundSink[int] = BackgroundSink(broken, depth=2)
    with pytest.raises(OSError, match="encoder gone"):
        for item in range(100):
            failing.put(item)
        failing.close()


def test_growing_list_serves_items_while_its_source_is_still_running():
    release = threading.Event()

    def source():
        yield "first"
        release.wait(5)
        yield "second"

    items = GrowingList(source())
    assert items[0] == "first" and not items.finished
    release.set()
    assert items[1] == "second"
    with pytest.raises(IndexError):
        items[2]
    assert items.finished and items.wait() == ["first", "second"]

    before = threading.active_count()
    known = GrowingList.complete(["a", "b"])
    assert threading.active_count() == before, "a complete list needs no thread"
    assert known.finished and known[1] == "b" and known.wait() == ["a", "b"]
    with pytest.raises(IndexError):
        known[2]
    known.close()


def test_growing_list_hands_the_sources_error_to_its_reader_and_stops_on_close():
    def failing():
        yield 1
        raise ValueError("detector broke")

    broken = GrowingList(failing())
    assert broken[0] == 1
    with pytest.raises(ValueError, match="detector broke"):
        broken[1]

    closed = threading.Event()
    before = threading.active_count()
    GrowingList(_endless(closed)).close()
    assert closed.is_set() and threading.active_count() == before


class _SlowDetector:
    """The real detector, counting frames, recording when each batch finished and taking ``delay`` longer."""

    def __init__(self, detector, delay: float) -> None:
        self.detector, self.delay, self.finished_at, self.frames = detector, delay, [], 0
        self.name = detector.name

    def detect(self, frames):
        self.frames += len(frames)
        time.sleep(self.delay)
        found = self.detector.detect(frames)
        self.finished_at.append(time.perf_counter())
        return found


class _TimedModel(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.started_at = model, []

    def forward(self, audio: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        self.started_at.append(time.perf_counter())
        return self.model(audio, faces)


def test_the_generator_starts_while_faces_are_still_being_detected(engine_settings, speech, tmp_path):
    long_template = make_video(tmp_path / "long.mp4", seconds=1.2, fps="25", size=SIZE)  # 30 frames
    engine = LipSyncEngine(engine_settings.model_copy(update={"batch_size": 8, "detector_batch_size": 4}))
    engine.detect_while_rendering = True  # what a GPU engine does
    detector = _SlowDetector(engine.tracker.detector, delay=0.15)  # 8 batches: detection lasts 1.2 s at least
    engine.tracker.detector = detector
    engine.model.generator.model = model = _TimedModel(engine.model.generator.model)
    report = engine.render(make_audio(tmp_path / "speech.wav", seconds=1.2), long_template, tmp_path / "out.mp4")
    assert report.faces.frames_with_face == 30 and len(detector.finished_at) == 8
    assert model.started_at[0] < detector.finished_at[-1], "the first batch waited for the whole track"

    engine.detect_while_rendering = False  # what a CPU engine does
    detector.finished_at.clear()
    model.started_at.clear()
    engine.render(make_audio(tmp_path / "speech.wav", seconds=1.2), long_template, tmp_path / "again.mp4")
    assert model.started_at[0] > detector.finished_at[-1]


def test_a_cpu_render_reports_detection_progress_and_can_be_cancelled_during_it(engine_settings, speech, tmp_path):
    template = make_video(tmp_path / "long.mp4", seconds=2.4, fps="25", size=SIZE)
    engine = LipSyncEngine(engine_settings.model_copy(update={"detector_batch_size": 4}))
    engine.tracker.detector = _SlowDetector(engine.tracker.detector, delay=0.15)
    seen: list[tuple[str, int, threading.Thread]] = []
    stop = threading.Event()

    def on_progress(progress) -> None:
        seen.append((progress.stage, progress.frames_done, threading.current_thread()))
        if progress.stage == "detect" and progress.frames_done > 0:
            stop.set()

    with pytest.raises(RenderCancelled):
        engine.render(
            make_audio(tmp_path / "speech.wav", seconds=2.4),
            template,
            tmp_path / "out.mp4",
            progress=on_progress,
            cancel=stop,
        )
    assert seen and {stage for stage, _, _ in seen} == {"detect"}
    assert {thread for _, _, thread in seen} == {threading.current_thread()}
    assert engine.tracker.detector.frames < 60, "detection stopped early"
    assert not (tmp_path / "out.mp4").exists()


# -- encoder choice ---------------------------------------------------------------------------------


def test_auto_encoder_is_libx264_without_a_gpu(engine, speech, template, tmp_path):
    report = engine.render(speech, template, tmp_path / "out.mp4", RenderOptions(fixed_box=(40, 30, 152, 150)))
    expected = "h264_nvenc" if engine.device.startswith("cuda") and nvenc_usable() else "libx264"
    assert report.output.encoder == expected == engine.describe().encoder


@pytest.mark.skipif(nvenc_usable(), reason="NVENC works on this machine")
def test_asking_for_nvenc_without_it_is_a_clear_error(engine_settings):
    with pytest.raises(EngineError, match="h264_nvenc"):
        LipSyncEngine(engine_settings.model_copy(update={"encoder": "h264_nvenc"}))


# -- GPU out-of-memory back-off ------------------------------------------------------------------------


class _RunsOutOfMemoryAbove(torch.nn.Module):
    """The real generator, refusing batches larger than ``limit`` as a full GPU would."""

    def __init__(self, model: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.model, self.limit, self.refused = model, limit, 0

    def forward(self, audio: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        if len(faces) > self.limit:
            self.refused += 1
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.model(audio, faces)


def test_out_of_memory_halves_the_batch_without_restarting_the_video(engine_settings, speech, template, tmp_path):
    engine = LipSyncEngine(engine_settings.model_copy(update={"batch_size": 16}))
    engine.model.generator.model = model = _RunsOutOfMemoryAbove(engine.model.generator.model, limit=4)
    report = engine.render(speech, template, tmp_path / "out.mp4", RenderOptions(fixed_box=(40, 30, 152, 150)))
    assert report.output.frame_count == 15
    assert engine.model.generator.batch.size == 4, "kept for the engine's later renders"
    assert model.refused == 2  # 16 then 8 refused once; 4 kept for the rest of the video
    assert any("ran out of memory" in warning for warning in report.warnings)

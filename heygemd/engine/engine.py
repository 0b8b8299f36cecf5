"""The lip-sync engine: loads the models once, then renders template videos to new audio.

A render streams: frames flow from an ffmpeg decoder through the face boxes, the generator and
the blend into an ffmpeg encoder, one batch at a time, so memory does not grow with the
video's length. Face detection runs in its own pass over the template, in a background
thread. On a GPU it runs a little ahead of the write loop: the smoothing looks a few frames
ahead, and a box reaches the write loop as soon as its window is in, so detection overlaps the
generator. On a CPU the generator needs every core, so the write loop waits for the whole track
(the detector then has the cores to itself) and a video without a face fails before any encoding.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, cast, overload

import numpy as np

from heygemd import __version__
from heygemd.atomic import atomic_output
from heygemd.codes import ErrorCode
from heygemd.engine import audio as audio_features
from heygemd.engine.errors import (
    AudioError,
    EngineError,
    MediaError,
    NoFaceError,
    RenderCancelled,
)
from heygemd.engine.faces import (
    FaceTracker,
    S3FDDetector,
    build_detector,
    interpolate_stride,
    stream_final_boxes,
)
from heygemd.engine.ffmpeg_tools import ffmpeg_path, ffprobe_path, nvenc_usable
from heygemd.engine.files import sha256_file
from heygemd.engine.lipsync import AudioFeatures, CropKey, FaceGeometry
from heygemd.engine.media import PixelFormat, VideoWriter, read_detection_frames, read_frames, read_frames_reversed
from heygemd.engine.notes import RenderNotes
from heygemd.engine.output_check import check_output
from heygemd.engine.pipeline import BackgroundSink, GrowingList, prefetch
from heygemd.engine.probe import AudioInfo, VideoInfo, probe_video
from heygemd.engine.report import (
    AudioInput,
    CheckpointReport,
    EngineInfo,
    FaceStats,
    LipSyncStats,
    OutputFile,
    ProgressStage,
    RenderProgress,
    RenderReport,
    Stage,
    VideoInput,
)
from heygemd.engine.schedule import Segment, schedule
from heygemd.engine.settings import Box, Encoder, EngineSettings, RenderOptions, RestorerKind
from heygemd.engine.silence import lip_sync_strength, loudness_db
from heygemd.engine.snapshot import AudioSnapshot, take_snapshot
from heygemd.engine.track_cache import TrackCache, track_key
from heygemd.engine.yuv import crop_face_i420, paste_i420

if TYPE_CHECKING:  # they import torch: a dry-run engine never loads them
    from heygemd.engine.checkpoint import CheckpointInfo
    from heygemd.engine.lipsync import LipSyncModel
    from heygemd.engine.restore import FaceRestorer

ProgressCallback = Callable[[RenderProgress], None]

# Frames travel as the codecs' own I420 (yuv420p): only the face region is ever converted to BGR,
# so every other pixel reaches the encoder exactly as decoded, and no full-frame conversion costs time.
FRAME_FORMAT: PixelFormat = "yuv420p"
REVERSE_CHUNK_FRAMES = 32  # frames decoded at once when a template is played backwards
QUEUE_FRAMES = 16  # frames each background stage (decoder, encoder) may run ahead
TRACK_FORMAT = 2  # bump when the meaning of a cached face track changes
PROGRESS_INTERVAL_S = 1.0  # how often a render waiting for its face track reports progress
DRY_RUN_DEVICE = "cpu"  # a dry run runs no model: it uses no GPU, and does not import torch to look for one


@dataclass(frozen=True, eq=False)
class PreparedAudio:
    """An audio file read and decoded once, and the model's features of it: reusable for every template of a job.

    It owns a private lossless copy of the decoded audio (``snapshot``), which every render muxes:
    the file itself is never read again. ``close()`` (or a ``with`` block) removes that copy; the
    garbage collector does so too, as a safety net.
    """

    path: Path
    info: AudioInfo
    sha256: str  # of exactly the bytes that were decoded
    size_bytes: int
    num_samples: int  # at audio_features.SAMPLE_RATE
    features: AudioFeatures | None  # the engine's model's features (None in a dry run: no model)
    loudness: np.ndarray  # (ceil(num_samples / 160),) dBFS of each 10 ms step: where the audio is silent
    seconds_spent: float
    snapshot: AudioSnapshot

    @property
    def duration(self) -> float:
        return self.num_samples / audio_features.SAMPLE_RATE

    @property
    def closed(self) -> bool:
        return self.snapshot.closed

    def close(self) -> None:
        self.snapshot.close()

    def __enter__(self) -> PreparedAudio:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def on_gpu(device: str) -> bool:
    return device.split(":", 1)[0] == "cuda"


def choose_encoder(requested: Encoder, device: str) -> str:
    """'auto' picks NVENC when rendering on a GPU whose ffmpeg encoder works, else libx264."""
    if requested == Encoder.LIBX264:
        return "libx264"
    usable = nvenc_usable()
    if requested == Encoder.H264_NVENC and not usable:
        raise EngineError("encoder h264_nvenc was asked for but this ffmpeg or GPU cannot encode with it")
    return "h264_nvenc" if usable and (requested == Encoder.H264_NVENC or on_gpu(device)) else "libx264"


def _device(settings: EngineSettings) -> str:
    if settings.dry_run:
        return DRY_RUN_DEVICE
    from heygemd.engine.generator import resolve_device  # torch is imported here, by a real engine only

    return str(resolve_device(settings.device))


class LipSyncEngine:
    """Loads the lip-sync model and the face detector once; each ``render`` reuses them.

    What is loaded stays on the engine and does not change while it renders (the generator's
    batch limit, lowered when the GPU runs out of memory, is a thread-safe value it owns);
    what belongs to one render lives in that render.
    """

    def __init__(self, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()
        ffmpeg_path(), ffprobe_path()  # FFmpegNotFound (an EngineError) now, not at the first job
        self.device = _device(self.settings)
        self.half_precision = on_gpu(self.device) and self.settings.half_precision
        self.encoder = choose_encoder(self.settings.encoder, self.device)
        # Two CPU-bound stages on the same cores only slow each other (OpenMP threads spin on
        # busy cores); a GPU generator leaves the CPU to the detector.
        self.detect_while_rendering = on_gpu(self.device)
        cache_dir = self.settings.face_cache_dir
        self.track_cache = TrackCache(cache_dir, self.settings.face_cache_max_mb << 20) if cache_dir else None
        self.model: LipSyncModel | None = None
        self.tracker: FaceTracker | None = None
        self.detector_checkpoint: CheckpointInfo | None = None
        self.track_identity: dict[str, object] = {}
        self.restorer: FaceRestorer | None = None
        if not self.settings.dry_run:
            self._load_models()

    def _load_models(self) -> None:
        from heygemd.engine.models import load_model

        settings = self.settings
        self.model = load_model(settings, self.device, self.half_precision)
        detector = build_detector(
            settings.detector, settings.detector_checkpoint, self.device, settings.face_threshold, half=self.half_precision
        )
        if isinstance(detector, S3FDDetector):
            self.detector_checkpoint = detector.checkpoint  # hashed once, by the loader
        self.tracker = FaceTracker(detector, settings.detector_batch_size)
        self.track_identity = self._detector_identity()
        if settings.restorer == RestorerKind.GFPGAN:  # (model_copy(update=...) may hold the plain string)
            from heygemd.engine.restore import FaceRestorer

            self.restorer = FaceRestorer(
                settings.restorer_checkpoint,
                self.device,
                half=self.half_precision,
                batch_size=settings.restorer_batch_size,
                detector=settings.detector,
            )

    def _detector_identity(self) -> dict[str, object]:
        """Everything that changes which boxes the detector finds: part of the face-track cache key."""
        identity: dict[str, object] = {
            "format": TRACK_FORMAT,
            "detector": self.settings.detector.value,
            "max_side": self.settings.detect_max_side,
            "stride": self.settings.detect_stride,
        }
        if self.detector_checkpoint is not None:
            identity["weights"] = self.detector_checkpoint.sha256
            identity["threshold"] = self.settings.face_threshold
            identity["half"] = self.half_precision
        return identity

    @property
    def checkpoint(self) -> CheckpointInfo | None:
        """The lip-sync model's generator weights (None in a dry run)."""
        return self.model.weights if self.model is not None else None

    # -- what the engine is -------------------------------------------------------------------

    def describe(self) -> EngineInfo:
        """What this engine is, for logs and reports."""
        dry_run = self.settings.dry_run
        return EngineInfo(
            heygemd_version=__version__,
            device=self.device,
            dry_run=dry_run,
            model=self.settings.model,
            model_files=[_checkpoint_report(info) for info in self.model.files] if self.model is not None else [],
            detector=None if dry_run else self.settings.detector,
            checkpoint=_checkpoint_report(self.checkpoint),
            detector_checkpoint=_checkpoint_report(self.detector_checkpoint),
            batch_size=self.settings.batch_size,
            encoder=self.encoder,
            half_precision=self.half_precision,
            face_cache=self.settings.face_cache_dir,
            restorer=_checkpoint_report(self.restorer.checkpoint) if self.restorer else None,
        )

    # -- audio ----------------------------------------------------------------------------------

    def prepare_audio(self, path: Path) -> PreparedAudio:
        """Read ``path`` once into a lossless snapshot and compute the model's features of its 16 kHz mono mix.

        The caller owns the result: ``close()`` it (or use ``with``) once its renders are done.
        """
        started = time.perf_counter()
        snapshot = take_snapshot(path, self.settings.temp_dir)
        try:
            samples = snapshot.decode(audio_features.SAMPLE_RATE)
            try:
                audio_features.check_samples(samples)  # every engine, a dry run too: the audio must be usable
                features = self.model.audio_features(samples) if self.model is not None else None
            except AudioError as err:
                raise AudioError(err.reason, path) from None
        except BaseException:
            snapshot.close()
            raise
        return PreparedAudio(
            path=path,
            info=snapshot.source_info,
            sha256=snapshot.source_sha256,
            size_bytes=snapshot.source_size,
            num_samples=len(samples),
            features=features,
            loudness=loudness_db(samples, audio_features.SAMPLE_RATE),
            seconds_spent=time.perf_counter() - started,
            snapshot=snapshot,
        )

    # -- rendering ------------------------------------------------------------------------------

    def render(
        self,
        audio: PreparedAudio | Path,
        video: Path,
        output: Path,
        options: RenderOptions | None = None,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> RenderReport:
        """Render ``video`` re-synced to ``audio`` into ``output`` (an .mp4, written atomically).

        The output's sound is ``audio``'s snapshot. The finished file is checked (``check_output``):
        if its sound and picture do not last as planned, OutputMismatch is raised and no output is left.
        A path is prepared for this render alone and its snapshot removed afterwards.
        """
        if isinstance(audio, Path):
            with self.prepare_audio(audio) as prepared:
                return self.render(prepared, video, output, options, progress=progress, cancel=cancel)
        audio.snapshot.check_open()
        options = options or RenderOptions()
        started_at = datetime.now(UTC)
        notes = RenderNotes()
        started = notes.now()
        notes.record(Stage.AUDIO, audio.seconds_spent)

        probe_started = notes.now()
        info = probe_video(video, still_fps=options.still_fps)
        video_sha256 = sha256_file(video)
        notes.add(Stage.PROBE, probe_started)

        render = _Render(self, audio, info, video_sha256, options, notes, progress, cancel)
        boxes = render.face_boxes()
        try:
            with atomic_output(output) as temporary:
                try:
                    frames_written = render.write(temporary, boxes)
                except EngineError as err:
                    if err.path != temporary:
                        raise
                    raise type(err)(err.reason, output, code=err.code) from None  # name the result, not its hidden temporary
                streams = check_output(
                    temporary,
                    frames=render.output_frames,
                    fps=Fraction(info.fps_fraction),
                    audio_duration=audio.snapshot.duration_fraction,
                    name=output,
                )
        finally:
            boxes.close()
        timings = notes.timings(total=notes.now() - started)

        return RenderReport(
            heygemd_version=__version__,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            audio=_audio_input(audio),
            video=VideoInput(
                path=video,
                sha256=video_sha256,
                size_bytes=video.stat().st_size,
                duration_s=info.duration,
                fps=info.fps,
                width=info.width,
                height=info.height,
                frame_count=info.frame_count,
                codec=info.codec,
                rotation=info.rotation,
                variable_frame_rate=info.variable_frame_rate,
                is_still=info.is_still,
            ),
            output=OutputFile(
                path=output,
                duration_s=float(streams.video_duration),
                planned_duration_s=float(render.output_frames / Fraction(info.fps_fraction)),
                audio_duration_s=float(streams.audio_duration or 0),
                audio_sample_rate=streams.audio_sample_rate,
                audio_channels=streams.audio_channels,
                fps=float(streams.fps),
                width=streams.width,
                height=streams.height,
                frame_count=frames_written,
                codec=streams.video_codec,
                crf=options.crf,
                encoder=self.encoder,
            ),
            options=options,
            faces=render.face_stats(),
            model=self.settings.model,
            lipsync=render.lipsync_stats(),
            checkpoint=_checkpoint_report(self.checkpoint),
            restorer=_checkpoint_report(self.restorer.checkpoint) if render.restores and self.restorer else None,
            device=self.device,
            dry_run=self.settings.dry_run,
            loop_policy_applied=render.output_frames > render.template_frames,
            timings=timings,
            warnings=notes.warnings,
        )


@overload
def _checkpoint_report(info: CheckpointInfo) -> CheckpointReport: ...
@overload
def _checkpoint_report(info: CheckpointInfo | None) -> CheckpointReport | None: ...
def _checkpoint_report(info: CheckpointInfo | None) -> CheckpointReport | None:
    if info is None:
        return None
    return CheckpointReport(path=info.path, sha256=info.sha256, size_bytes=info.size_bytes, known_name=info.known_name)


def _audio_input(audio: PreparedAudio) -> AudioInput:
    return AudioInput(
        path=audio.path,
        sha256=audio.sha256,
        size_bytes=audio.size_bytes,
        duration_s=audio.duration,
        sample_rate=audio.info.sample_rate,
        channels=audio.info.channels,
        codec=audio.info.codec,
        snapshot_sha256=audio.snapshot.sha256,
        snapshot_duration_s=audio.snapshot.duration,
    )


class _Render:
    """The state of one render: the frame schedule, the face boxes and the write loop.

    It reads the engine's loaded parts and never changes them; what it counts from several
    threads (seconds per stage, warnings) goes through ``notes``.
    """

    def __init__(
        self,
        engine: LipSyncEngine,
        audio: PreparedAudio,
        info: VideoInfo,
        video_sha256: str,
        options: RenderOptions,
        notes: RenderNotes,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.audio = audio
        self.info = info
        self.video_sha256 = video_sha256
        self.options = options
        self.notes = notes
        self.progress = progress
        self.cancel = cancel
        self.fps = info.fps
        self.output_frames = audio_features.video_frame_count(audio.num_samples, self.fps)
        self.template_frames = max(1, info.frame_count)
        self.frames_with_face = 0
        self.frames_without_face = 0
        self.frames_silent = 0
        self.template_cache_hits = 0
        self.cache_hit = False
        self.strength = lip_sync_strength(
            audio.loudness, self.output_frames, self.fps, options.silence_db, options.silence_min_s
        )
        if engine.model is not None and (unknown_weights := engine.model.unknown_weights_warning()):
            notes.warn(unknown_weights)
        if info.variable_frame_rate:
            notes.warn(f"variable frame rate input rendered at a constant {self.fps:.3f} fps")
        self.restores = engine.restorer is not None and options.restore_weight > 0
        if engine.restorer is not None and self.restores and (unknown := engine.restorer.unknown_checkpoint_warning()):
            notes.warn(unknown)

    # -- faces ----------------------------------------------------------------------------------

    @property
    def detector_name(self) -> str:
        if self.settings.dry_run:
            return "none (dry run)"
        if self.options.fixed_box is not None:
            return "fixed_box"
        return self.settings.detector.value

    def face_boxes(self) -> _FaceBoxes:
        """One padded, smoothed box (or None) per template frame the output will show.

        From the face-track cache or a fixed box they are all known at once; otherwise a
        background thread detects them while the write loop consumes them.
        """
        needed = min(self.template_frames, self.output_frames)
        if self.settings.dry_run:
            return _FaceBoxes.known([None] * needed, self.info.path, need_face=False)
        if self.options.fixed_box is not None:
            return _FaceBoxes.known([self._fixed_box()] * needed, self.info.path)
        raw = self._cached_track(needed)
        if raw is not None:
            self.cache_hit = True
            return _FaceBoxes.known(list(self._final_boxes(raw)), self.info.path)
        boxes = _FaceBoxes(
            GrowingList(self._final_boxes(self._detect_track(needed)), "detect"), self.info.path, total=needed
        )
        if not self.engine.detect_while_rendering:
            try:
                boxes.wait(self._report_detection)
            except BaseException:
                boxes.close()
                raise
        return boxes

    def _report_detection(self, frames_done: int, frames_total: int) -> None:
        if self.progress:
            self.progress(
                RenderProgress(
                    video=self.info.path, frames_done=frames_done, frames_total=frames_total, stage=ProgressStage.DETECT
                )
            )

    def _final_boxes(self, raw: Iterable[Box | None]) -> Iterator[Box | None]:
        size = (self.info.width, self.info.height)
        return stream_final_boxes(raw, self.options.pads, size, self.settings.smooth_window)

    def _track_key(self) -> str:
        return track_key(self.video_sha256, {**self.engine.track_identity, "fps": str(self.info.fps_fraction)})

    def _cached_track(self, needed: int) -> list[Box | None] | None:
        cache = self.engine.track_cache
        return None if cache is None else cache.load(self._track_key(), needed)

    def _detect_track(self, needed: int) -> Iterator[Box | None]:
        """Raw boxes of the first ``needed`` frames, lazily: detected on every ``detect_stride``-th, interpolated between.

        Stored in the face-track cache once complete. A template that decodes to fewer frames
        than its probe promised holds its last box to the end (the write loop repeats its last frame).
        """
        tracker = self.engine.tracker
        assert tracker is not None
        stride = self.settings.detect_stride
        # The decoder drops the frames between samples and shrinks the rest to the detector's size.
        small = read_detection_frames(self.info, needed, self.settings.detect_max_side, every=stride)
        decoded = prefetch(self.notes.timed(Stage.DECODE, small), QUEUE_FRAMES, "decode")
        waited = 0.0
        samples_seen = 0

        def samples() -> Iterator[np.ndarray]:
            nonlocal waited, samples_seen
            while True:
                self._check_cancel()
                started = time.perf_counter()
                frame = next(decoded, None)
                waited += time.perf_counter() - started
                if frame is None:
                    return
                samples_seen += 1
                yield frame

        raw: list[Box | None] = []
        started = self.notes.now()
        full_size = (self.info.width, self.info.height)
        try:
            for box in interpolate_stride(tracker.track(samples(), full_size), stride, needed):
                raw.append(box)
                yield box
        finally:
            decoded.close()
            # The detector waited for the decoder now and then: that is decoding, not detection.
            self.notes.add(Stage.DETECT, started, excluding=waited)
        samples_due = -(-needed // stride)
        if samples_seen < samples_due:
            self._note_short_decode(min(needed, samples_seen * stride), needed)
        elif self.engine.track_cache is not None:
            self.engine.track_cache.store(self._track_key(), raw)

    def _fixed_box(self) -> Box:
        x1, y1, x2, y2 = self.options.fixed_box  # type: ignore[misc]
        width, height = self.info.width, self.info.height
        clipped = (max(0, x1), max(0, y1), min(width, x2), min(height, y2))
        if clipped[2] - clipped[0] < 2 or clipped[3] - clipped[1] < 2:
            raise EngineError(
                f"the fixed box {self.options.fixed_box} lies outside the {width}x{height} frame",
                self.info.path,
                code=ErrorCode.RENDER_OPTION_UNFIT,
            )
        return clipped

    def lipsync_stats(self) -> LipSyncStats:
        return LipSyncStats(silent_frames=self.frames_silent, template_cache_hits=self.template_cache_hits)

    def face_stats(self) -> FaceStats:
        return FaceStats(
            detector=self.detector_name,
            frames_with_face=self.frames_with_face,
            frames_without_face=self.frames_without_face,
            fixed_box=self.options.fixed_box,
            cache_hit=self.cache_hit,
            detect_stride=self.settings.detect_stride,
        )

    # -- frames in schedule order ---------------------------------------------------------------

    def scheduled_frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """(template index, I420 frame) for every output frame, streamed from the decoder."""
        segments = schedule(self.template_frames, self.output_frames, self.options.loop)
        if self.output_frames > self.template_frames:
            self.notes.warn(
                f"the audio outlasts the template ({self.output_frames} frames needed, {self.template_frames} "
                f"available): extended with '{self.options.loop.value}'"
            )
        elif self.output_frames < self.info.frame_count:
            self.notes.warn(
                f"the template is longer than the audio: trimmed to {self.output_frames} of {self.info.frame_count} frames"
            )
        for segment in segments:
            yield from self._segment_frames(segment)

    def _segment_frames(self, segment: Segment) -> Iterator[tuple[int, np.ndarray]]:
        if segment.step == 0:
            frames = self._decode(read_frames(self.info, segment.start, 1, pixel_format=FRAME_FORMAT), 1)
            frame = next(frames)
            for _ in range(segment.count):
                yield segment.start, frame.copy()  # each output frame is blended in place
            return
        if segment.step > 0:
            source = read_frames(self.info, segment.start, segment.count, pixel_format=FRAME_FORMAT)
        else:
            source = read_frames_reversed(
                self.info, segment.last, segment.start, REVERSE_CHUNK_FRAMES, pixel_format=FRAME_FORMAT
            )
        for offset, frame in enumerate(self._decode(source, segment.count)):
            yield segment.start + offset * segment.step, frame

    def _decode(self, frames: Iterator[np.ndarray], count: int) -> Iterator[np.ndarray]:
        """Time the decoder and make sure exactly ``count`` frames come out.

        A probe can promise a frame or two more than a damaged or VFR file decodes to; the last
        frame is then repeated so the output keeps its length and stays in sync.
        """
        delivered = 0
        last: np.ndarray | None = None
        for frame in self.notes.timed(Stage.DECODE, frames):
            if delivered == count:
                break
            delivered += 1
            last = frame if frame.flags.writeable else frame.copy()
            yield last
        if delivered < count:
            if last is None:
                raise MediaError("the video's frames could not be decoded", self.info.path)
            self._note_short_decode(delivered, count)
            for _ in range(count - delivered):
                yield last.copy()

    def _note_short_decode(self, delivered: int, expected: int) -> None:
        self.notes.warn(f"the decoder delivered {delivered} of {expected} expected frames; the last was repeated")

    # -- the write loop -------------------------------------------------------------------------

    def write(self, output: Path, boxes: _FaceBoxes) -> int:
        """Encode every output frame to ``output``; returns the number of frames written.

        Three stages overlap: a thread decodes ahead, this thread runs the generator and the
        blend a batch at a time, and a thread feeds the encoder.
        """
        batch_size = self.settings.batch_size
        written = 0
        frames = prefetch(self.scheduled_frames(), QUEUE_FRAMES, "decode")
        with VideoWriter(
            output,
            self.info.width,
            self.info.height,
            Fraction(self.info.fps_fraction),
            self.audio.snapshot.path,
            crf=self.options.crf,
            preset=self.options.preset,
            encoder=self.engine.encoder,
            pixel_format=FRAME_FORMAT,
            colour=self.info.colour,
        ) as writer:
            sink: BackgroundSink[np.ndarray] = BackgroundSink(
                self.notes.timed_call(Stage.ENCODE, writer.write), QUEUE_FRAMES, "encode"
            )
            try:
                batch: list[tuple[int, int, np.ndarray]] = []  # (output index, template index, frame)
                for template_index, frame in frames:
                    batch.append((written + len(batch), template_index, frame))
                    if len(batch) == batch_size:
                        written += self._write_batch(sink, batch, boxes)
                        batch = []
                if batch:
                    written += self._write_batch(sink, batch, boxes)
                sink.close()
            except BaseException:
                sink.abort()
                raise
            finally:
                frames.close()
            self.notes.timed_call(Stage.ENCODE, lambda _: writer.close())(None)
        if written != self.output_frames:
            raise MediaError(f"wrote {written} frames where {self.output_frames} were due", self.info.path)
        return written

    def _write_batch(
        self, sink: BackgroundSink[np.ndarray], batch: list[tuple[int, int, np.ndarray]], boxes: _FaceBoxes
    ) -> int:
        self._check_cancel()
        boxes.raise_if_faceless()
        with_face = [item for item in batch if boxes[item[1]] is not None]
        model = self.engine.model
        if model is not None:
            self.frames_with_face += len(with_face)
            self.frames_without_face += len(batch) - len(with_face)
            speaking = [item for item in with_face if self.strength[item[0]] > 0]
            self.frames_silent += len(with_face) - len(speaking)  # the template's own frame, untouched
            if speaking:
                self._lip_sync(model, speaking, boxes)
        for _, _, frame in batch:
            sink.put(frame)
        if self.progress:
            self.progress(
                RenderProgress(video=self.info.path, frames_done=batch[-1][0] + 1, frames_total=self.output_frames)
            )
        return len(batch)

    def _lip_sync(self, model: LipSyncModel, items: list[tuple[int, int, np.ndarray]], boxes: _FaceBoxes) -> None:
        """Run the model on the faces of ``items`` and paste the results into their frames in place."""
        started = self.notes.now()
        geometry = model.geometry
        face_boxes = cast(list[Box], [boxes[template_index] for _, template_index, _ in items])  # items with a face
        detector = None if self.options.fixed_box is not None else self.engine.settings.detector  # whose boxes
        crop_boxes = [geometry.crop_box(box, self.info.width, self.info.height, detector) for box in face_boxes]
        crops = np.stack(
            [
                crop_face_i420(frame, box, geometry.face_size, geometry.interpolation)
                for (_, _, frame), box in zip(items, crop_boxes)
            ]
        )
        keys = [CropKey(self.video_sha256, template_index, box) for (_, template_index, _), box in zip(items, crop_boxes)]
        self.notes.add(Stage.BLEND, started)

        started = self.notes.now()  # the windows count as the model's time: MuseTalk encodes its whisper states here
        assert self.audio.features is not None, "a real engine's audio has its model's features"
        windows = self.audio.features.windows([output_index for output_index, _, _ in items], self.fps)
        generated = model.generate(crops, windows, keys, self._note_back_off)
        self.template_cache_hits += generated.cache_hits
        self.notes.add(Stage.MODEL, started)

        started = self.notes.now()
        for (output_index, _, frame), box, face in zip(items, crop_boxes, generated.faces):
            strength = float(self.strength[output_index])
            paste_i420(frame, box, face, self.options.blend, self.options.feather, geometry.mask_top, strength)
        self.notes.add(Stage.BLEND, started)
        if self.restores:
            self._restore(items, face_boxes, geometry)

    def _restore(self, items: list[tuple[int, int, np.ndarray]], face_boxes: list[Box], geometry: FaceGeometry) -> None:
        """Restore the faces just pasted (GFPGAN), blended back into the model's crop boxes through its paste mask."""
        restorer = self.engine.restorer
        assert restorer is not None
        started = self.notes.now()
        restorer.restore(
            [frame for _, _, frame in items],
            face_boxes,
            geometry=geometry,
            strengths=[float(self.strength[output_index]) for output_index, _, _ in items],
            mode=self.options.blend,
            feather=self.options.feather,
            weight=self.options.restore_weight,
            warn=self.notes.warn,
            fixed_box=self.options.fixed_box is not None,
            progress=lambda done: self._report_restored(items[done - 1][0] + 1),
        )
        self.notes.add(Stage.RESTORE, started)

    def _report_restored(self, frames_done: int) -> None:
        if self.progress:
            self.progress(
                RenderProgress(
                    video=self.info.path,
                    frames_done=frames_done,
                    frames_total=self.output_frames,
                    stage=ProgressStage.RESTORE,
                )
            )

    def _note_back_off(self, failed: int, now: int) -> None:
        self.notes.warn(f"the GPU ran out of memory at batch {failed}: continuing with {now}")

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise RenderCancelled("the render was stopped before it finished; nothing was written", self.info.path)


class _FaceBoxes:
    """The smoothed face box (or None) of each template frame, possibly still being detected."""

    def __init__(self, boxes: GrowingList[Box | None], video: Path, *, need_face: bool = True, total: int = 0) -> None:
        self._boxes = boxes
        self._video = video
        self._face_seen = not need_face
        self._total = total

    @classmethod
    def known(cls, boxes: list[Box | None], video: Path, *, need_face: bool = True) -> _FaceBoxes:
        """Boxes known up front; a track without any face fails here, before anything is encoded."""
        known = cls(GrowingList.complete(boxes), video, need_face=need_face)
        known.wait()
        return known

    def __getitem__(self, template_index: int) -> Box | None:
        """The box of ``template_index``, waiting for detection to get there."""
        try:
            return self._boxes[template_index]
        except IndexError:  # the template decoded short: its last box is held
            boxes = self._boxes.wait()
            return boxes[-1] if boxes else None

    def wait(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Wait for every box, calling ``progress(boxes in, boxes due)`` about every second.

        Raises the detector's error, or NoFaceError. The calls come from the waiting thread,
        so a progress callback never runs on two threads at once.
        """
        while not self._boxes.finished:
            self._boxes.wait(timeout=PROGRESS_INTERVAL_S)
            if progress is not None:
                progress(len(self._boxes), self._total)
        self._boxes.wait()
        self.raise_if_faceless()

    def raise_if_faceless(self) -> None:
        """NoFaceError once every box is in and none has a face."""
        if self._face_seen or not self._boxes.finished:
            return
        boxes = self._boxes.wait()
        self._face_seen = any(box is not None for box in boxes)
        if not self._face_seen and boxes:
            raise NoFaceError("no face was found in any frame of this video", self._video)

    def close(self) -> None:
        self._boxes.close()

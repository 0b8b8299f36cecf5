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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from heygemd import __version__
from heygemd.atomic import atomic_output
from heygemd.engine import audio as audio_features
from heygemd.engine.blend import generator_faces, prediction_images
from heygemd.engine.checkpoint import CheckpointInfo, inspect_checkpoint, load_wav2lip
from heygemd.engine.errors import (
    AudioError,
    EngineError,
    MediaError,
    NoFaceError,
    RenderCancelled,
)
from heygemd.engine.faces import (
    FaceTracker,
    build_detector,
    interpolate_stride,
    stream_final_boxes,
)
from heygemd.engine.ffmpeg_tools import nvenc_usable
from heygemd.engine.files import sha256_file
from heygemd.engine.media import (
    VideoWriter,
    read_detection_frames,
    read_frames,
    read_frames_reversed,
)
from heygemd.engine.model import prepare_for_inference
from heygemd.engine.output_check import check_output
from heygemd.engine.pipeline import BackgroundSink, GrowingList, prefetch
from heygemd.engine.probe import AudioInfo, VideoInfo, probe_video
from heygemd.engine.restore import FaceRestorer
from heygemd.engine.report import (
    AudioInput,
    CheckpointReport,
    FaceStats,
    OutputFile,
    RenderProgress,
    RenderReport,
    StageTimings,
    VideoInput,
)
from heygemd.engine.schedule import Segment, schedule
from heygemd.engine.settings import (
    Box,
    DetectorKind,
    Encoder,
    EngineSettings,
    RenderOptions,
    RestorerKind,
)
from heygemd.engine.snapshot import AudioSnapshot, take_snapshot
from heygemd.engine.track_cache import TrackCache, track_key
from heygemd.engine.yuv import crop_face_i420, paste_i420

ProgressCallback = Callable[[RenderProgress], None]

# Frames travel as the codecs' own I420 (yuv420p): only the face region is ever converted to BGR,
# so every other pixel reaches the encoder exactly as decoded, and no full-frame conversion costs time.
FRAME_FORMAT = "yuv420p"
REVERSE_CHUNK_FRAMES = 32  # frames decoded at once when a template is played backwards
QUEUE_FRAMES = 16  # frames each background stage (decoder, encoder) may run ahead
TRACK_FORMAT = 2  # bump when the meaning of a cached face track changes
PROGRESS_INTERVAL_S = 1.0  # how often a render waiting for its face track reports progress


@dataclass(frozen=True, eq=False)
class PreparedAudio:
    """An audio file read and decoded once, and its mel features: reusable for every template of a job.

    It owns a private lossless copy of the decoded audio (``snapshot``), which every render muxes:
    the file itself is never read again. ``close()`` (or a ``with`` block) removes that copy; the
    garbage collector does so too, as a safety net.
    """

    path: Path
    info: AudioInfo
    sha256: str  # of exactly the bytes that were decoded
    size_bytes: int
    num_samples: int  # at audio_features.SAMPLE_RATE
    mel: np.ndarray  # (80, 1 + num_samples // 200) float32
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


@dataclass
class _Stopwatch:
    """Seconds spent per stage of one render."""

    timings: StageTimings = field(default_factory=StageTimings)

    def add(self, stage: str, since: float) -> None:
        setattr(self.timings, stage, getattr(self.timings, stage) + time.perf_counter() - since)

    def timed(self, stage: str, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Pass ``frames`` through, counting the time spent producing them as ``stage``."""
        try:
            while True:
                started = time.perf_counter()
                try:
                    frame = next(frames)
                except StopIteration:
                    return
                finally:
                    self.add(stage, started)
                yield frame
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()  # stop the decoder now, not when the garbage collector gets to it


def resolve_device(requested: str) -> torch.device:
    """'auto' picks the first CUDA device when there is one, else the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise EngineError(f"device {requested!r} is not a device name: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EngineError(f"device {requested!r} was asked for but torch sees no CUDA device (driver missing, or a CPU build of torch)")
    return device


def choose_encoder(requested: Encoder, device: torch.device) -> str:
    """'auto' picks NVENC when rendering on a GPU whose ffmpeg encoder works, else libx264."""
    if requested == Encoder.LIBX264:
        return "libx264"
    usable = nvenc_usable()
    if requested == Encoder.H264_NVENC and not usable:
        raise EngineError("encoder h264_nvenc was asked for but this ffmpeg or GPU cannot encode with it")
    return "h264_nvenc" if usable and (requested == Encoder.H264_NVENC or device.type == "cuda") else "libx264"


class LipSyncEngine:
    """Loads the generator and the face detector once; each ``render`` reuses them."""

    def __init__(self, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()
        self.device = resolve_device(self.settings.device)
        self.encoder = choose_encoder(self.settings.encoder, self.device)
        self.model: torch.nn.Module | None = None
        self.checkpoint: CheckpointInfo | None = None
        self._tracker: FaceTracker | None = None
        self._track_settings: dict[str, object] = {}
        self.half_precision = self.device.type == "cuda" and self.settings.half_precision
        self.generator_batch = self.settings.batch_size  # lowered for good if the GPU runs out of memory
        # Two CPU-bound stages on the same cores only slow each other (OpenMP threads spin on
        # busy cores); a GPU generator leaves the CPU to the detector.
        self.detect_while_rendering = self.device.type == "cuda"
        cache_dir = self.settings.face_cache_dir
        self.track_cache = TrackCache(cache_dir, self.settings.face_cache_max_mb << 20) if cache_dir else None
        self.restorer: FaceRestorer | None = None
        if self.settings.dry_run:
            return
        model, self.checkpoint = load_wav2lip(self.settings.checkpoint, self.device)
        self.model = prepare_for_inference(model, half=self.half_precision)
        detector = build_detector(
            self.settings.detector,
            self.settings.detector_checkpoint,
            str(self.device),
            self.settings.face_threshold,
        )
        self._tracker = FaceTracker(detector, self.settings.detect_max_side, self.settings.detector_batch_size)
        self._track_settings = self._detector_identity()
        if self.settings.restorer == RestorerKind.GFPGAN:
            self.restorer = FaceRestorer(
                self.settings.restorer_checkpoint, self.device, half=self.half_precision,
                batch_size=self.settings.restorer_batch_size, detector=self.settings.detector,
            )

    def _detector_identity(self) -> dict[str, object]:
        """Everything that changes which boxes the detector finds: part of the face-track cache key."""
        identity: dict[str, object] = {
            "format": TRACK_FORMAT,
            "detector": self.settings.detector.value,
            "max_side": self.settings.detect_max_side,
            "stride": self.settings.detect_stride,
        }
        if self.settings.detector == DetectorKind.S3FD:
            identity["weights"] = inspect_checkpoint(self.settings.detector_checkpoint).sha256
            identity["threshold"] = self.settings.face_threshold
            identity["half"] = self.half_precision
        return identity

    # -- what the engine is -------------------------------------------------------------------

    def describe(self) -> dict:
        """JSON-able summary for logs and reports."""
        return {
            "heygemd_version": __version__,
            "device": str(self.device),
            "dry_run": self.settings.dry_run,
            "detector": None if self.settings.dry_run else self.settings.detector.value,
            "checkpoint": self._checkpoint_report().model_dump(mode="json") if self.checkpoint else None,
            "batch_size": self.settings.batch_size,
            "encoder": self.encoder,
            "half_precision": self.half_precision,
            "face_cache": str(self.settings.face_cache_dir) if self.settings.face_cache_dir else None,
            "restorer": _file_report(self.restorer.checkpoint).model_dump(mode="json") if self.restorer else None,
        }

    def _checkpoint_report(self) -> CheckpointReport:
        assert self.checkpoint is not None
        info = self.checkpoint
        return CheckpointReport(path=info.path, sha256=info.sha256, size_bytes=info.size_bytes, known_name=info.known_name)

    # -- audio ----------------------------------------------------------------------------------

    def prepare_audio(self, path: Path) -> PreparedAudio:
        """Read ``path`` once into a lossless snapshot and compute the mel features of its 16 kHz mono mix.

        The caller owns the result: ``close()`` it (or use ``with``) once its renders are done.
        """
        started = time.perf_counter()
        snapshot = take_snapshot(path, self.settings.temp_dir)
        try:
            samples = snapshot.decode(audio_features.SAMPLE_RATE)
            try:
                mel = audio_features.melspectrogram(samples)
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
            mel=mel,
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
        started_at = datetime.now(timezone.utc)
        clock = _Stopwatch()
        started = time.perf_counter()
        clock.timings.audio = audio.seconds_spent

        probe_started = time.perf_counter()
        info = probe_video(video, still_fps=options.still_fps)
        video_sha256 = sha256_file(video)
        clock.add("probe", probe_started)

        render = _Render(self, audio, info, video_sha256, options, clock, progress, cancel)
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
                    temporary, frames=render.output_frames, fps=Fraction(info.fps_fraction),
                    audio_duration=audio.snapshot.duration_fraction, name=output,
                )
        finally:
            boxes.close()
        clock.timings.total = time.perf_counter() - started

        return RenderReport(
            heygemd_version=__version__,
            started_at=started_at,
            finished_at=datetime.now(timezone.utc),
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
            checkpoint=self._checkpoint_report() if self.checkpoint else None,
            restorer=_file_report(self.restorer.checkpoint) if render.restores else None,
            device=str(self.device),
            dry_run=self.settings.dry_run,
            loop_policy_applied=render.output_frames > render.template_frames,
            timings=clock.timings,
            warnings=render.warnings,
        )


def _file_report(info: CheckpointInfo) -> CheckpointReport:
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
    """The state of one render: the frame schedule, the face boxes and the write loop."""

    def __init__(
        self,
        engine: LipSyncEngine,
        audio: PreparedAudio,
        info: VideoInfo,
        video_sha256: str,
        options: RenderOptions,
        clock: _Stopwatch,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> None:
        self.engine = engine
        self.audio = audio
        self.info = info
        self.video_sha256 = video_sha256
        self.options = options
        self.clock = clock
        self.progress = progress
        self.cancel = cancel
        self.fps = info.fps
        self.output_frames = audio_features.video_frame_count(audio.num_samples, self.fps)
        self.template_frames = max(1, info.frame_count)
        self.frames_with_face = 0
        self.frames_without_face = 0
        self.cache_hit = False
        self.warnings: list[str] = []
        if engine.checkpoint is not None and engine.checkpoint.known_name is None:
            self.warnings.append(
                f"checkpoint {engine.checkpoint.path.name} (sha256 {engine.checkpoint.sha256[:12]}…) is not a "
                "published Wav2Lip checkpoint; results depend on its training"
            )
        if info.variable_frame_rate:
            self.warnings.append(f"variable frame rate input rendered at a constant {self.fps:.3f} fps")
        self.restores = engine.restorer is not None and options.restore_weight > 0
        if self.restores and (unknown := engine.restorer.unknown_checkpoint_warning()):  # type: ignore[union-attr]
            self.warnings.append(unknown)

    # -- faces ----------------------------------------------------------------------------------

    @property
    def detector_name(self) -> str:
        if self.engine.settings.dry_run:
            return "none (dry run)"
        if self.options.fixed_box is not None:
            return "fixed_box"
        return self.engine.settings.detector.value

    def face_boxes(self) -> _FaceBoxes:
        """One padded, smoothed box (or None) per template frame the output will show.

        From the face-track cache or a fixed box they are all known at once; otherwise a
        background thread detects them while the write loop consumes them.
        """
        needed = min(self.template_frames, self.output_frames)
        if self.engine.settings.dry_run:
            return _FaceBoxes.known([None] * needed, self.info.path, need_face=False)
        if self.options.fixed_box is not None:
            return _FaceBoxes.known([self._fixed_box()] * needed, self.info.path)
        raw = self._cached_track(needed)
        if raw is not None:
            self.cache_hit = True
            return _FaceBoxes.known(list(self._final_boxes(raw)), self.info.path)
        boxes = _FaceBoxes(GrowingList(self._final_boxes(self._detect_track(needed)), "detect"), self.info.path, total=needed)
        if not self.engine.detect_while_rendering:
            try:
                boxes.wait(self._report_detection)
            except BaseException:
                boxes.close()
                raise
        return boxes

    def _report_detection(self, frames_done: int, frames_total: int) -> None:
        if self.progress:
            self.progress(RenderProgress(video=self.info.path, frames_done=frames_done, frames_total=frames_total, stage="detect"))

    def _final_boxes(self, raw: Iterable[Box | None]) -> Iterator[Box | None]:
        size = (self.info.width, self.info.height)
        return stream_final_boxes(raw, self.options.pads, size, self.engine.settings.smooth_window)

    def _track_key(self) -> str:
        return track_key(self.video_sha256, {**self.engine._track_settings, "fps": str(self.info.fps_fraction)})

    def _cached_track(self, needed: int) -> list[Box | None] | None:
        cache = self.engine.track_cache
        return None if cache is None else cache.load(self._track_key(), needed)

    def _detect_track(self, needed: int) -> Iterator[Box | None]:
        """Raw boxes of the first ``needed`` frames, lazily: detected on every ``detect_stride``-th, interpolated between.

        Stored in the face-track cache once complete. A template that decodes to fewer frames
        than its probe promised holds its last box to the end (the write loop repeats its last frame).
        """
        tracker = self.engine._tracker
        assert tracker is not None
        stride = self.engine.settings.detect_stride
        # The decoder drops the frames between samples and shrinks the rest to the detector's size.
        small = read_detection_frames(self.info, needed, tracker.max_side, every=stride)
        decoded = prefetch(self.clock.timed("decode", small), QUEUE_FRAMES, "decode")
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
        started = time.perf_counter()
        full_size = (self.info.width, self.info.height)
        try:
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.engine.half_precision):
                for box in interpolate_stride(tracker.track(samples(), full_size), stride, needed):
                    raw.append(box)
                    yield box
        finally:
            decoded.close()
            # The detector waited for the decoder now and then: that is decoding, not detection.
            self.clock.timings.detect += time.perf_counter() - started - waited
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
            raise MediaError(
                f"the fixed box {self.options.fixed_box} lies outside the {width}x{height} frame", self.info.path
            )
        return clipped

    def face_stats(self) -> FaceStats:
        return FaceStats(
            detector=self.detector_name,
            frames_with_face=self.frames_with_face,
            frames_without_face=self.frames_without_face,
            fixed_box=self.options.fixed_box,
            cache_hit=self.cache_hit,
            detect_stride=self.engine.settings.detect_stride,
        )

    # -- frames in schedule order ---------------------------------------------------------------

    def scheduled_frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """(template index, BGR frame) for every output frame, streamed from the decoder."""
        segments = schedule(self.template_frames, self.output_frames, self.options.loop)
        if self.output_frames > self.template_frames:
            self.warnings.append(
                f"the audio outlasts the template ({self.output_frames} frames needed, {self.template_frames} "
                f"available): extended with '{self.options.loop.value}'"
            )
        elif self.output_frames < self.info.frame_count:
            self.warnings.append(
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
        for frame in self.clock.timed("decode", frames):
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
        self.warnings.append(f"the decoder delivered {delivered} of {expected} expected frames; the last was repeated")

    # -- the write loop -------------------------------------------------------------------------

    def write(self, output: Path, boxes: _FaceBoxes) -> int:
        """Encode every output frame to ``output``; returns the number of frames written.

        Three stages overlap: a thread decodes ahead, this thread runs the generator and the
        blend a batch at a time, and a thread feeds the encoder.
        """
        batch_size = self.engine.settings.batch_size
        written = 0
        frames = prefetch(self.scheduled_frames(), QUEUE_FRAMES, "decode")
        with VideoWriter(
            output, self.info.width, self.info.height, Fraction(self.info.fps_fraction), self.audio.snapshot.path,
            crf=self.options.crf, preset=self.options.preset, encoder=self.engine.encoder, pixel_format=FRAME_FORMAT,
            colour=self.info.colour,
        ) as writer:
            sink: BackgroundSink[np.ndarray] = BackgroundSink(self._timed(writer.write, "encode"), QUEUE_FRAMES, "encode")
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
            self._timed(lambda _: writer.close(), "encode")(None)
        if written != self.output_frames:
            raise MediaError(f"wrote {written} frames where {self.output_frames} were due", self.info.path)
        return written

    def _timed(self, work: Callable[[np.ndarray], None], stage: str) -> Callable[[np.ndarray], None]:
        def timed_work(item: np.ndarray) -> None:
            started = time.perf_counter()
            work(item)
            self.clock.add(stage, started)

        return timed_work

    def _write_batch(self, sink: BackgroundSink[np.ndarray], batch: list[tuple[int, int, np.ndarray]], boxes: _FaceBoxes) -> int:
        self._check_cancel()
        boxes.raise_if_faceless()
        with_face = [item for item in batch if boxes[item[1]] is not None]
        if self.engine.model is not None:
            self.frames_with_face += len(with_face)
            self.frames_without_face += len(batch) - len(with_face)
            if with_face:
                self._lip_sync(with_face, boxes)
        for _, _, frame in batch:
            sink.put(frame)
        if self.progress:
            self.progress(RenderProgress(video=self.info.path, frames_done=batch[-1][0] + 1, frames_total=self.output_frames))
        return len(batch)

    def _lip_sync(self, items: list[tuple[int, int, np.ndarray]], boxes: _FaceBoxes) -> None:
        """Run the generator on the faces of ``items`` and paste the results into their frames in place."""
        started = time.perf_counter()
        face_boxes = [boxes[template_index] for _, template_index, _ in items]
        crops = np.stack([crop_face_i420(frame, box) for (_, _, frame), box in zip(items, face_boxes)])
        faces = generator_faces(crops)
        mels = audio_features.mel_windows(self.audio.mel, [output_index for output_index, _, _ in items], self.fps)
        self.clock.add("blend", started)

        started = time.perf_counter()
        predicted_faces = prediction_images(self._generate(mels, faces))
        self.clock.add("model", started)

        started = time.perf_counter()
        for (_, _, frame), box, face in zip(items, face_boxes, predicted_faces):
            paste_i420(frame, box, face, self.options.blend, self.options.feather)  # type: ignore[arg-type]
        self.clock.add("blend", started)
        if self.restores:
            started = time.perf_counter()
            self.engine.restorer.restore(  # type: ignore[union-attr]
                [frame for _, _, frame in items], face_boxes, mode=self.options.blend, feather=self.options.feather,
                weight=self.options.restore_weight, warn=self.warnings.append, fixed_box=self.options.fixed_box is not None,
                progress=lambda done: self._report_restored(items[done - 1][0] + 1),
            )
            self.clock.add("restore", started)

    def _report_restored(self, frames_done: int) -> None:
        if self.progress:
            self.progress(RenderProgress(video=self.info.path, frames_done=frames_done, frames_total=self.output_frames, stage="restore"))

    def _generate(self, mels: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """(B,1,80,16) mels and (B,6,96,96) faces -> (B,3,96,96) float32 in [0, 1].

        Runs in slices of the engine's generator batch; if the GPU runs out of memory the batch
        is halved for good and the same slice tried again, so the video is not started over.
        """
        engine = self.engine
        results: list[np.ndarray] = []
        start = 0
        while start < len(faces):
            size = engine.generator_batch
            try:
                results.append(self._forward(mels[start : start + size], faces[start : start + size]))
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise
                torch.cuda.empty_cache()
                engine.generator_batch = size // 2
                self.warnings.append(f"the GPU ran out of memory at batch {size}: continuing with {size // 2}")
                continue
            start += size
        return np.concatenate(results)

    def _forward(self, mels: np.ndarray, faces: np.ndarray) -> np.ndarray:
        engine = self.engine
        with torch.inference_mode():
            audio_tensor, face_tensor = _to_device(mels, engine.device), _to_device(faces, engine.device)
            face_tensor = face_tensor.contiguous(memory_format=torch.channels_last)
            if engine.half_precision:
                audio_tensor, face_tensor = audio_tensor.half(), face_tensor.half()
            return engine.model(audio_tensor, face_tensor).float().cpu().numpy()  # type: ignore[misc]

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


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Host to device; through pinned memory on CUDA so the copy can overlap."""
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor

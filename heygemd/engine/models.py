"""The lip-sync models the engine can run: one row each. A model is loaded by naming it in ``engine.model``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from heygemd.engine.settings import EngineSettings, ModelKind

if TYPE_CHECKING:
    from heygemd.engine.lipsync import LipSyncModel

# Each module has ``load(settings, device, half) -> LipSyncModel``; imported only when its model is chosen
# (each brings its own libraries: MuseTalk's diffusers and transformers are not imported for Wav2Lip).
LOADERS: dict[ModelKind, str] = {
    ModelKind.WAV2LIP: "heygemd.engine.wav2lip_port",
    ModelKind.MUSETALK: "heygemd.engine.musetalk.port",
}


def load_model(settings: EngineSettings, device: str, half: bool) -> LipSyncModel:
    """The model ``settings.model`` names, loaded on ``device`` (float16 when ``half``)."""
    module = importlib.import_module(LOADERS[ModelKind(settings.model)])
    model: LipSyncModel = module.load(settings, device, half)
    return model

"""MuseTalk 1.5 as heygemd's second lip-sync model: ``load_musetalk(models_dir, device)`` is the stable entry point.

It imports torch, diffusers and transformers: a dry run or a Wav2Lip engine never imports this package.
"""

from heygemd.engine.musetalk.model import MuseTalk, load_musetalk, positional_encoding

__all__ = ["MuseTalk", "load_musetalk", "positional_encoding"]

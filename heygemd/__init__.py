"""heygemd: a self-hosted lip-sync video service built on Wav2Lip."""

__version__ = "0.1.0"

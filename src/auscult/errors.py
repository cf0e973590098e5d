"""Typed errors that a user can act on.

Every error names the offending file (where there is one) and says what to do about it.
Catch :class:`AuscultError` to handle everything auscult raises on bad input.
"""

from __future__ import annotations

from pathlib import Path


class AuscultError(Exception):
    """Base class of every error auscult raises for bad input or configuration."""


class ConfigError(AuscultError, ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


class DataError(AuscultError):
    """A dataset, file name, manifest or ground-truth file is malformed or inconsistent."""


class AudioError(AuscultError):
    """Base class for problems with one audio file. ``path`` names the file."""

    def __init__(self, path: str | Path | None, message: str, fix: str | None = None):
        self.path = Path(path) if path is not None else None
        self.reason = message
        self.fix = fix
        where = f"{self.path}: " if self.path is not None else ""
        text = f"{where}{message}"
        if fix:
            text += f" ({fix})"
        super().__init__(text)


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The audio file does not exist."""


class AudioDecodeError(AudioError):
    """The file exists but cannot be decoded (unreadable, corrupt, truncated, not audio)."""


class EmptyAudioError(AudioError):
    """The file decodes to zero samples."""


class NonFiniteAudioError(AudioError):
    """The decoded samples contain NaN or Inf."""


class SampleRateError(AudioError):
    """The file's sample rate is not the configured one and resampling is disabled."""


class ChannelCountError(AudioError):
    """The file's channel count does not fit the channel policy (e.g. a mono file where the
    DCASE 2026 policies ``near``/``far``/``both`` need a two-channel clip)."""


class CheckpointError(AuscultError):
    """A checkpoint or model bundle is missing, truncated, corrupt or from an incompatible version."""


class SubmissionError(DataError):
    """A submission folder does not match the ground truth (missing, extra or duplicate names)."""


class CapabilityError(ConfigError):
    """A method was asked for something it does not declare (``embed``, ``explain``, ``export``)."""

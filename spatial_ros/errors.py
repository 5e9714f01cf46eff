"""Exceptions of spatial_ros. Every error a user can cause derives from SpatialRosError.

The CLI prints the message and exits 1 (no traceback); nodes log it and skip the frame. Wrap
low-level errors (OSError, KeyError, yaml errors) with ``raise XError("what to do") from None``.
"""


class SpatialRosError(Exception):
    """Base class: a message a user can act on."""


class ConfigError(SpatialRosError, ValueError):
    """A configuration value is invalid or two values conflict."""


class DecodeError(SpatialRosError, ValueError):
    """A sensor message cannot be decoded (unknown encoding, bad sizes, malformed cloud)."""


class CalibrationError(SpatialRosError):
    """Intrinsics/extrinsics missing or unusable (e.g. no CameraInfo yet, K all zeros)."""


class ModelError(SpatialRosError):
    """A model directory is missing, incomplete, or not loadable from safetensors."""


class ParseError(SpatialRosError, ValueError):
    """Model output or a user phrase could not be parsed; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class DataError(SpatialRosError):
    """A dataset / bag / ground-truth file is missing or malformed."""

"""Errors of the pipeline (no Qt, no rasterio): one message for the user that names the input and the fix."""

from __future__ import annotations


class PipelineError(Exception):
    """A problem the user can fix. ``input_name`` names the offending input (e.g. ``"phase"``) or is None.

    ``str(err)`` is the full message; the UI shows it as is and may highlight ``input_name``'s widget.
    """

    def __init__(self, message: str, input_name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.input_name = input_name


class Cancelled(Exception):  # noqa: N818 - the UI's name for it
    """Raised inside the pipeline when the cancel token is set; run_estimate turns it into a clean exit."""

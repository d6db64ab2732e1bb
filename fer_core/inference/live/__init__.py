"""The live camera without Streamlit: tracking between frames, the threaded frame processor, and the
session's records (charts, summary, CSV)."""

from fer_core.inference.live.analytics import NO_FACE, LiveSession
from fer_core.inference.live.processor import FrameRecord, LiveProcessor, LiveSettings

__all__ = ["NO_FACE", "FrameRecord", "LiveProcessor", "LiveSession", "LiveSettings"]

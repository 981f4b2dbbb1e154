"""medground-eval: Chain-of-Box parsing, coordinate frames, grounding rewards and metrics for medical VLMs.

The core names are re-exported here; rewards live in :mod:`medground_eval.rewards`, loaders in
:mod:`medground_eval.datasets`, trainer adapters in :mod:`medground_eval.integrations`.
"""

from medground_eval.frames import FRAME_PRESETS, Frame, get_frame, smart_resize
from medground_eval.metrics import GroundingReport, SampleScores, grounding_report, score_samples
from medground_eval.parsing import completion_text, parse_completion
from medground_eval.structures import ParsedBox, ParsedCompletion, Sample

__version__ = "0.1.0"

__all__ = [
    "FRAME_PRESETS",
    "Frame",
    "GroundingReport",
    "ParsedBox",
    "ParsedCompletion",
    "Sample",
    "SampleScores",
    "completion_text",
    "get_frame",
    "grounding_report",
    "parse_completion",
    "score_samples",
    "smart_resize",
]

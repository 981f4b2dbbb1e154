"""medground-eval: Chain-of-Box parsing, coordinate frames, grounding rewards and metrics for medical VLMs."""

__version__ = "0.1.0"

"""The runnable examples in the docstrings of the core and the rewards: each runs, and says what it shows.

``make test`` runs them with the suite (this module), so an example that drifts from the code fails CI. The second
test keeps the examples coming: every public function and class of these modules has one, except the names listed
in :data:`WITHOUT_EXAMPLE` (classes of plain results and protocols, whose methods or users carry the example), which
may only shrink.
"""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

MODULES = [
    "medground_eval.structures", "medground_eval.parsing", "medground_eval.fastparse",
    "medground_eval.frames.conversions", "medground_eval.frames.resolver",
    "medground_eval.boxes", "medground_eval.regions", "medground_eval.metrics", "medground_eval.prompts",
    "medground_eval.validation", "medground_eval.extras",
    "medground_eval.rewards.base", "medground_eval.rewards.format", "medground_eval.rewards.spatial",
    "medground_eval.rewards.semantic", "medground_eval.rewards.combined", "medground_eval.rewards.columns",
    "medground_eval.rewards.encoders",
]

WITHOUT_EXAMPLE = {
    "medground_eval.structures": {"ParsedBox", "Sample"},
    "medground_eval.fastparse": {"fast_parse", "canonical_label", "FastColumns", "canonical_boxes"},
    "medground_eval.frames.conversions": {"FrameConversion", "Frame"},
    "medground_eval.regions": {"ParsedBatch", "PredictedRegions"},
    "medground_eval.metrics": {"SampleScores", "GroundingReport", "paired_bootstrap", "bca_interval"},
    "medground_eval.extras": {"MissingExtraError"},
    "medground_eval.rewards.base": {"Reward"},
    "medground_eval.rewards.spatial": {"SpatialResult"},
    "medground_eval.rewards.semantic": {"SemanticResult"},
    "medground_eval.rewards.combined": {"RewardBreakdown"},
    "medground_eval.rewards.columns": {"RewardInputError", "GroundTruthBatch"},
    "medground_eval.rewards.encoders": {"TextEncoder", "SentenceTransformerEncoder", "LexicalEncoder",
                                        "CallableEncoder", "CacheInfo", "CachedEncoder", "ClipRegionEncoder"},
}


def _public(module) -> dict[str, object]:
    return {name: obj for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module.__name__}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name} (run it with -s)"


@pytest.mark.parametrize("name", MODULES)
def test_public_definitions_have_an_example(name):
    module = importlib.import_module(name)
    missing = {n for n, obj in _public(module).items() if ">>>" not in (inspect.getdoc(obj) or "")}
    allowed = WITHOUT_EXAMPLE.get(name, set())
    assert missing <= allowed, f"public definitions of {name} without a runnable example: {sorted(missing - allowed)}"
    assert allowed <= set(_public(module)), f"{name}: WITHOUT_EXAMPLE names gone: {sorted(allowed - set(_public(module)))}"

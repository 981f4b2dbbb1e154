"""The core imports without torch or any other heavy dependency (the `make demo` install has none of them)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "trl", "matplotlib", "PIL", "nibabel", "datasets")


def test_core_modules_import_no_heavy_dependency():
    code = (
        "import sys\n"
        "import medground_eval, medground_eval.rewards, medground_eval.evaluation.scorer, medground_eval.metrics\n"
        "import medground_eval.datasets, medground_eval.demo, medground_eval.evaluation.compat, medground_eval.cli\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_public_names_resolve():
    import medground_eval

    for name in medground_eval.__all__:
        assert getattr(medground_eval, name) is not None

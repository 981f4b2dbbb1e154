"""Prompt templates: the built-in ones, custom format strings and their errors."""

from __future__ import annotations

import pytest

from medground_eval.prompts import TEMPLATES, chat_prompt, render_prompt


def test_builtin_templates_ask_for_the_json_answer() -> None:
    for name in TEMPLATES:
        text = render_prompt("left apical pneumothorax", name)
        assert '"left apical pneumothorax"' in text
        assert '[{"bbox_2d": [x1, y1, x2, y2], "label": "<finding>"}]' in text


def test_custom_template_and_chat_prompt() -> None:
    assert render_prompt("mass", "Find the {phrase}; answer as {{\"bbox_2d\": [...]}}.") == (
        'Find the mass; answer as {"bbox_2d": [...]}.'
    )
    assert chat_prompt("mass", "Where is the {phrase}?", with_image=False) == [
        {"role": "user", "content": [{"type": "text", "text": "Where is the mass?"}]}
    ]


@pytest.mark.parametrize(
    "template",
    [
        'Find {phrase}. Answer as {"bbox_2d": [x1, y1, x2, y2]}.',  # JSON braces not doubled
        "Find {phrase} in image {0}.",
        "Find {phrase} {",
    ],
)
def test_custom_template_with_other_fields_names_the_fix(template: str) -> None:
    with pytest.raises(ValueError, match=r"only the field \{phrase\}.*literal braces as \{\{ and \}\}"):
        render_prompt("mass", template)


def test_unknown_template_name() -> None:
    with pytest.raises(ValueError, match="expected one of"):
        render_prompt("mass", "chain_of_box")

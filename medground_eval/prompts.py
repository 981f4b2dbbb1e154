"""Prompt templates: the Chain-of-Box prompt of MedGround-R1 and a plain grounding prompt.

Chain-of-Box asks the model to write, inside ``<think>``, the boxes of the regions it considers before giving the
final box in ``<answer>``. Both templates ask for the Qwen2.5-VL JSON answer dialect, which the parser reads along
with every other common dialect. ``{phrase}`` is the referring phrase.
"""

from __future__ import annotations

from typing import Literal

TemplateName = Literal["chain-of-box", "plain"]

TEMPLATES: dict[str, str] = {
    "chain-of-box": (
        "Locate the region of this medical image described by: \"{phrase}\".\n"
        "First think step by step inside <think> </think>: for each anatomical region you consider, write its "
        "bounding box as [x1, y1, x2, y2] and say what you see there. Then give the final answer inside "
        "<answer> </answer> as JSON: [{{\"bbox_2d\": [x1, y1, x2, y2], \"label\": \"<finding>\"}}]."
    ),
    "plain": (
        "Locate the region of this medical image described by: \"{phrase}\". "
        "Output the thinking process in <think> </think> and the final answer in <answer> </answer> as JSON: "
        "[{{\"bbox_2d\": [x1, y1, x2, y2], \"label\": \"<finding>\"}}]."
    ),
}


def render_prompt(phrase: str, template: TemplateName | str = "chain-of-box") -> str:
    """The user instruction for one referring phrase; ``template`` is a name in TEMPLATES or a ``str.format``
    string whose one field is ``{phrase}`` (literal braces, as in a JSON example, written ``{{`` and ``}}``).

    Raises ValueError for a string without ``{phrase}`` or with any other field or a lone brace.

    >>> render_prompt("cardiomegaly", "Find {phrase}.")
    'Find cardiomegaly.'
    """
    text = TEMPLATES.get(template, template)
    if "{phrase}" not in text:
        raise ValueError(f"template {template!r}: expected one of {sorted(TEMPLATES)} or a string containing {{phrase}}")
    try:
        return text.format(phrase=phrase)
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(
            f"template {template!r}: {type(error).__name__} {error}; expected only the field {{phrase}}"
            " (write literal braces as {{ and }})"
        ) from None


def chat_prompt(phrase: str, template: TemplateName | str = "chain-of-box", *, with_image: bool = True) -> list[dict]:
    """A conversational prompt (one user turn: the image placeholder, then the instruction) as trainers expect.

    >>> chat_prompt("cardiomegaly", "Find {phrase}.")
    [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'Find cardiomegaly.'}]}]
    """
    content: list[dict] = [{"type": "image"}] if with_image else []
    content.append({"type": "text", "text": render_prompt(phrase, template)})
    return [{"role": "user", "content": content}]

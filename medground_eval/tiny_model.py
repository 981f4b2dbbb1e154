"""A tiny random-weight Qwen2.5-VL checkpoint built locally (no download, no torchvision).

The tokenizer is a byte-level BPE without merges (one token per byte) plus the Qwen special tokens, with a small
chat template in the Qwen layout; the image processor is the PIL Qwen2-VL one. :func:`build_tiny_qwen` writes a
directory that :func:`medground_eval.inference.load_model_and_processor` reads like a real checkpoint, so every
training stage, ``predict`` and ``score`` can be run end to end on a CPU.

Sizes (:data:`SIZES`):

- ``"test"``: text hidden 32, 1 layer; vision 1 block of hidden 32; 56 x 56 input (4 image tokens). For unit tests.
- ``"learn"``: about 2 M parameters: text hidden 128, 4 layers; vision depth 2, hidden 128; 112 x 112 input
  (16 image tokens). Large enough to learn the synthetic grounding task (:mod:`medground_eval.synth`) in minutes.

Both use patch 14 and merge 2 (a 28-pixel factor). The processor's ``max_pixels`` fixes the input size: a 224-pixel
synthetic image becomes 112 x 112 under ``"learn"`` and the model writes boxes in that resized frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinySize:
    """Widths and depths of a tiny checkpoint, and its processor's pixel limits."""

    hidden: int
    layers: int
    heads: int
    vision_hidden: int
    vision_depth: int
    min_pixels: int
    max_pixels: int


SIZES = {
    "test": TinySize(hidden=32, layers=1, heads=2, vision_hidden=32, vision_depth=1,
                     min_pixels=28 * 28, max_pixels=56 * 56),
    "learn": TinySize(hidden=128, layers=4, heads=4, vision_hidden=128, vision_depth=2,
                      min_pixels=28 * 28, max_pixels=112 * 112),
}


def build_tokenizer():
    """A byte-level tokenizer (256 byte tokens, then the special tokens) as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    vocab = {char: index for index, char in enumerate(sorted(byte_chars))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        padding_side="left",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_qwen(path: str | Path, *, size: str = "test", seed: int = 0) -> Path:
    """Save a tiny Qwen2.5-VL of ``size`` (a key of :data:`SIZES`) with its tokenizer and image processor in ``path``.

    The weights are drawn from ``torch.manual_seed(seed)``: the same seed gives the same checkpoint.
    """
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    if size not in SIZES:
        raise ValueError(f"tiny model size {size!r}: expected one of {', '.join(SIZES)}")
    dims = SIZES[size]
    path = Path(path)
    tokenizer = build_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    head_dim = dims.hidden // dims.heads
    half = head_dim // 2  # M-RoPE sections (temporal, height, width) share head_dim / 2 frequencies, 2:3:3 as Qwen's
    temporal = half // 4
    mrope_section = [temporal, (half - temporal) // 2, half - temporal - (half - temporal) // 2]
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=dims.hidden,
            intermediate_size=2 * dims.hidden,
            num_hidden_layers=dims.layers,
            num_attention_heads=dims.heads,
            num_key_value_heads=max(1, dims.heads // 2),
            max_position_embeddings=1024,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope_section},
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=dims.vision_depth,
            hidden_size=dims.vision_hidden,
            intermediate_size=2 * dims.vision_hidden,
            num_heads=2,
            out_hidden_size=dims.hidden,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=112,
            fullatt_block_indexes=list(range(dims.vision_depth)),
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=dims.min_pixels, max_pixels=dims.max_pixels)
    image_processor.save_pretrained(path)
    return path

"""A byte-level BPE tokenizer trained locally with `tokenizers`, wrapped as a transformers fast tokenizer.

The special tokens and the chat template follow the Llama 3 conventions (header tokens, `<|eot_id|>`,
`<|image|>`), so the serving code drives it exactly as it drives a real Llama tokenizer.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"
EOT = "<|eot_id|>"
IMAGE = "<|image|>"
PAD = "<|finetune_right_pad_id|>"
SPECIAL_TOKENS = [BOS, EOS, "<|start_header_id|>", "<|end_header_id|>", EOT, IMAGE, PAD, "<|python_tag|>"]

# Our own template in the Llama 3 shape: a header per turn, text parts trimmed, `<|image|>` where an image
# part stands, and the assistant header when a reply is wanted.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] | trim }}"
    "{%- else %}{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' %}{{- '<|image|>' }}"
    "{%- elif part['type'] == 'text' %}{{- part['text'] | trim }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

# Enough varied English for a few hundred merges; the model is random, so only the tokenizer learns it.
_CORPUS = """
Sovereign clusters serve Llama models under export control. Each region decides which variants it may host.
The policy engine answers every request: allowed, denied, or unavailable, and unknown means deny.
A text-only cluster refuses images, audio and files. Weights are verified before the server starts.
The quick brown fox jumps over the lazy dog while the operator reconciles the RayService status.
Hello, how are you today? I am fine, thank you. What is the capital of France? Paris is the capital.
Count from one to ten: one, two, three, four, five, six, seven, eight, nine, ten.
Prometheus scrapes request counters, token counters and latency histograms with bounded labels.
""".strip()


def train_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS.splitlines() * 4, trainer=trainer)
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )
    return fast

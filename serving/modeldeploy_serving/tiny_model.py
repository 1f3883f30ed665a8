"""A tiny, deterministic Llama-architecture model generated offline.

Tests and the local `make serve` need a real model directory that vLLM loads like any other
(config.json, safetensors weights, a tokenizer with a chat template), without a model hub and in
seconds on a CPU. The weights are random, so the text it writes is gibberish, but greedy decoding
is deterministic, which is what the tests compare.

Sizes: vLLM's CPU attention rejects head sizes below 64, so head_dim is 64 with 2 heads (hidden
128) and one KV head; vocab 512 keeps the embedding small (about 1.7 MB of weights in all).

The directory is written under a temporary name and renamed into place, so a half-written model
is never mistaken for a finished one; a finished one is reused (the call is cached).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

SEED = 1234
VOCAB_SIZE = 512
HIDDEN_SIZE = 128
INTERMEDIATE_SIZE = 256
NUM_LAYERS = 2
NUM_HEADS = 2
NUM_KV_HEADS = 1
HEAD_DIM = 64
MAX_POSITIONS = 2048

BOS = "<s>"
EOS = "</s>"
PAD = "<pad>"
UNK = "<unk>"

# A plain role-tagged format; the tiny model was never trained on it, but vLLM applies it like
# any real model's template, which is what the serving path needs to exercise.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# Files whose presence marks a finished model directory.
_DONE_MARKER = ".modeldeploy-tiny-model"

_CORPUS_LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "A model deployment serves an open-weight language model on Kubernetes.",
    "Ray Serve runs replicas; each replica hosts one vLLM engine.",
    "Requests arrive over HTTP and are answered with JSON or server-sent events.",
    "user assistant system: hello, how are you today? I am fine, thank you.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 42 100 1000 and punctuation , . ; : ! ? ( ) [ ] { }",
    "Once upon a time there was a small model that answered every question with noise.",
    "Tokens are pieces of text; a tokenizer turns text into ids and back again.",
]


def is_tiny_model(path: Path) -> bool:
    """True when `path` holds a finished model written by `make_tiny_model`."""
    return (path / _DONE_MARKER).is_file()


def make_tiny_model(path: str | os.PathLike[str]) -> Path:
    """Write the tiny model into `path` (created if missing) unless it is already there.

    Returns the model directory. Deterministic: the same code writes the same tokenizer and
    the same weights on every machine.
    """
    target = Path(path).expanduser().resolve()
    if is_tiny_model(target):
        return target
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} exists and is not a tiny model directory; not touching it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write_tokenizer(staging)
        _write_model(staging)
        (staging / _DONE_MARKER).write_text("tiny llama for modeldeploy tests\n")
        if target.exists():
            target.rmdir()
        staging.chmod(0o755)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _write_tokenizer(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, BOS, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS_LINES * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=MAX_POSITIONS,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)


def _write_model(out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(out)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_KV_HEADS,
        head_dim=HEAD_DIM,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config)  # type: ignore[no-untyped-call]
    model.save_pretrained(out)

"""Where the tokenizer comes from: a pretrained one (hub name or local folder), or one trained
from the training split for random-init models (the `tokenizers` library, WordPiece).

The data module calls `build(texts)` once in `prepare_data` and saves the result with the
cached data; both classes are picked by the `tokenizer` config group.
"""

from __future__ import annotations

from collections.abc import Iterable

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from lit_nlp.errors import LitNlpError


def lowercases(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the tokenizer maps cased and uncased text to the same ids (an uncased vocab)."""
    probe = "Fine Film OK"
    return tokenizer(probe)["input_ids"] == tokenizer(probe.lower())["input_ids"]


def tokenizer_before_data(source, cleaner) -> PreTrainedTokenizerBase | None:
    """A pretrained tokenizer exists before the data, a trained one only after cleaning (it is
    trained on the clean training text): build the first now (None for the second), and settle
    the cleaner's `lowercase: auto` from the tokenizer's casing."""
    tokenizer = None if source.trained_from_data else source.build()
    if cleaner.lowercase == "auto":
        cleaner.resolve_lowercase(source.lowercase if tokenizer is None else lowercases(tokenizer))
    return tokenizer


class PretrainedTokenizer:
    """The tokenizer saved with a pretrained model (`name_or_path`: hub name or local folder)."""

    trained_from_data = False

    def __init__(self, name_or_path: str | None, trust_remote_code: bool = False):
        if not name_or_path:
            raise LitNlpError("tokenizer=pretrained needs model.backbone.pretrained (a hub name or folder); "
                              "random-init models train one: tokenizer=wordpiece")
        self.name_or_path = str(name_or_path)
        self.trust_remote_code = trust_remote_code

    def build(self, texts: Iterable[str] | None = None) -> PreTrainedTokenizerBase:
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                self.name_or_path, use_fast=True, trust_remote_code=self.trust_remote_code
            )
        except OSError as err:
            raise LitNlpError(
                f"cannot load tokenizer '{self.name_or_path}' ({str(err).splitlines()[0]}); "
                "without hub access use a local folder or model=minilm / model=bert_tiny"
            ) from None
        if not tokenizer.is_fast:
            raise LitNlpError(f"tokenizer '{self.name_or_path}' has no fast version; lit_nlp needs one")
        return tokenizer

    def cache_key(self) -> dict:
        return {"kind": "pretrained", "name_or_path": self.name_or_path}


class WordPieceTokenizer:
    """A BERT-style WordPiece tokenizer trained from the training texts, for random-init models
    that have no pretrained vocabulary. Deterministic for the same texts."""

    trained_from_data = True
    SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    def __init__(self, vocab_size: int = 2000, lowercase: bool = True, min_frequency: int = 1,
                 model_max_length: int = 512):
        self.vocab_size = vocab_size
        self.lowercase = lowercase
        self.min_frequency = min_frequency
        self.model_max_length = model_max_length

    def build(self, texts: Iterable[str] | None = None) -> PreTrainedTokenizerFast:
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

        if texts is None:
            raise LitNlpError("a trained tokenizer needs training texts; none were given")
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=self.lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=self.vocab_size, min_frequency=self.min_frequency,
            special_tokens=self.SPECIAL, show_progress=False,
        )
        tok.train_from_iterator(texts, trainer)
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
            sep_token="[SEP]", mask_token="[MASK]", model_max_length=self.model_max_length,
            model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        )

    def cache_key(self) -> dict:
        return {"kind": "wordpiece", **vars(self)}


class BPETokenizer:
    """A T5-style tokenizer (SentencePiece-like BPE over Metaspace pieces, `<pad>`=0,
    `</s>`=1, `<unk>`=2, `</s>` appended) trained from the training texts, for random-init
    seq2seq models. Decoding gives back the text with its spacing, which exact match needs.
    (BPE rather than Unigram: on small corpora the tokenizers Unigram trainer keeps barely more
    than the characters, e.g. 107 pieces for a 2,000-sentence corpus asked for 400.)"""

    trained_from_data = True
    SPECIAL = ["<pad>", "</s>", "<unk>"]

    def __init__(self, vocab_size: int = 2000, lowercase: bool = True, model_max_length: int = 512):
        self.vocab_size = vocab_size
        self.lowercase = lowercase
        self.model_max_length = model_max_length

    def build(self, texts: Iterable[str] | None = None) -> PreTrainedTokenizerFast:
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

        if texts is None:
            raise LitNlpError("a trained tokenizer needs training texts; none were given")
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if self.lowercase else [])
        tok.normalizer = normalizers.Sequence(steps)
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=self.vocab_size, special_tokens=self.SPECIAL, show_progress=False)
        tok.train_from_iterator(texts, trainer)
        eos = tok.token_to_id("</s>")
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos)])
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
            model_max_length=self.model_max_length, model_input_names=["input_ids", "attention_mask"],
        )

    def cache_key(self) -> dict:
        return {"kind": "bpe", **vars(self)}

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
        normalizer = normalizers.BertNormalizer(lowercase=self.lowercase)
        pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        words = _WordsWithContinuations(normalizer, pre_tokenizer)
        # tokenizers' WordPieceTrainer is BPE over words whose later characters carry "##";
        # it makes those "##x" pieces in hash-map order, so their ids, and the merges that
        # tie on counts, change from one process to the next (huggingface/tokenizers#1794).
        # The same BPE here on characters that stand for "##x", each a character of its own
        # in the (sorted) alphabet, learns the same kind of vocabulary, the same every time.
        bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
        bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.BpeTrainer(vocab_size=self.vocab_size, min_frequency=self.min_frequency,
                                      special_tokens=self.SPECIAL, show_progress=False)
        bpe.train_from_iterator(map(words.marked, texts), trainer)
        vocab = {words.piece(token) if token not in self.SPECIAL else token: i for token, i in bpe.get_vocab().items()}
        tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
        tok.normalizer = normalizer
        tok.pre_tokenizer = pre_tokenizer
        tok.decoder = decoders.WordPiece()
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


class _WordsWithContinuations:
    """Texts as WordPiece training sees them: normalized, split into words, and every character
    after a word's first written as a stand-in character for "##<character>" (`marked`); a
    learnt piece back in WordPiece's spelling (`piece`). The stand-ins are private-use code
    points, from the top of plane 16 down: BertNormalizer removes every private-use character
    from the texts, so none of them can be a text's own."""

    def __init__(self, normalizer, pre_tokenizer):
        self.normalizer, self.pre_tokenizer = normalizer, pre_tokenizer
        self.stand_in: dict[str, str] = {}  # character -> its "##" stand-in
        self.of_stand_in: dict[str, str] = {}

    def marked(self, text: str) -> str:
        words = [word for word, _ in self.pre_tokenizer.pre_tokenize_str(self.normalizer.normalize_str(text))]
        return " ".join(word[0] + "".join(map(self._stand_in, word[1:])) for word in words if word)

    def _stand_in(self, char: str) -> str:
        mark = self.stand_in.get(char)
        if mark is None:
            mark = chr(0x10FFFD - len(self.stand_in))
            self.stand_in[char], self.of_stand_in[mark] = mark, char
        return mark

    def piece(self, token: str) -> str:
        if token[0] in self.of_stand_in:
            return "##" + "".join(self.of_stand_in[c] for c in token)
        return token[0] + "".join(self.of_stand_in.get(c, c) for c in token[1:])


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

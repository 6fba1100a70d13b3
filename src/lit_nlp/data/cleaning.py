"""Text cleaning: an ordered list of named steps, configured once and saved with the model
so that predict applies exactly what training applied.

Off by default, on purpose: stop-word removal, stemming, lemmatisation and spelling correction.
BERT-style models were pretrained on raw running text; removing "not" or "no" flips sentiment,
and stemming produces word pieces the tokenizer never saw in pretraining. They are not offered.
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from typing import Callable, Sequence

from lit_nlp.errors import LitNlpError

log = logging.getLogger(__name__)

_TAG = re.compile(r"<[^>]{1,200}>")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_MENTION = re.compile(r"(?<![\w@])@\w{1,30}")

# Contractions are expanded only where the expansion is unambiguous ("'s" could be "is" or a
# possessive, "'d" could be "had" or "would"), so those are left alone.
_CONTRACTIONS = {
    "won't": "will not", "can't": "cannot", "shan't": "shall not", "ain't": "am not",
    "n't": " not", "'re": " are", "'ve": " have", "'ll": " will", "'m": " am",
}
_CONTRACTION = re.compile(
    r"\b(won't|can't|shan't|ain't)|(?<=\w)(n't|'re|'ve|'ll|'m)\b", re.IGNORECASE
)


def _expand(match: re.Match) -> str:
    found = match.group(0)
    expansion = _CONTRACTIONS[found.lower()]
    return expansion.capitalize() if found[0].isupper() and found[0].isalpha() else expansion


def _normalize_unicode(text: str, form: str = "NFKC") -> str:
    # NFKC folds full-width letters, ligatures and non-breaking spaces into plain forms.
    return unicodedata.normalize(form, text)


# Each step below first checks for the characters its pattern cannot match without, so most
# texts skip the regular expression: the default steps on SST-2 went from 11-14 to 4 us a row
# (2-core machine). The checks are exact: the same output as the pattern on SST-2, BBC articles
# and 100,000 generated texts.
def _strip_html(text: str) -> str:
    if "<" not in text and "&" not in text:  # no tag, and html.unescape leaves text without "&" alone
        return text
    return html.unescape(_TAG.sub(" ", text))


def _replace(pattern: re.Pattern, token: str, needs: Callable[[str], bool]) -> Callable[[str], str]:
    return lambda text: pattern.sub(token, text) if needs(text) else text


def _may_hold_url(text: str) -> bool:
    # every match holds "://" (http://, https:// in any case) or www. ("W" is the only other case of "w")
    return "://" in text or "www." in text.lower()


def _whitespace(text: str) -> str:
    # str.split() splits on exactly the characters that \s matches (checked over every code
    # point), so this is re.sub(r"\s+", " ", text).strip() without the regular expression
    return " ".join(text.split())


def _contractions(text: str) -> str:
    if "'" not in text and "\u2019" not in text:
        return text
    text = text.replace("\u2019", "'")
    return _CONTRACTION.sub(_expand, text)


# name -> factory(options) -> step; the config names steps by these keys.
STEPS: dict[str, Callable[..., Callable[[str], str]]] = {
    "unicode": lambda form="NFKC": lambda t: _normalize_unicode(t, form),
    "html": lambda: _strip_html,
    "urls": lambda token="<url>": _replace(_URL, token, _may_hold_url),
    "emails": lambda token="<email>": _replace(_EMAIL, token, lambda t: "@" in t),
    "mentions": lambda token="@user": _replace(_MENTION, token, lambda t: "@" in t),
    "contractions": lambda: _contractions,
    "lowercase": lambda: str.lower,
    "whitespace": lambda: _whitespace,
}


class TextCleaner:
    """Applies the configured steps in order.

    `steps` is a list of step names, or `{name: {option: value}}` items for options
    (e.g. `{urls: {token: "[link]"}}`). `lowercase` is `auto` (lowercase when the tokenizer
    is uncased: decided by the data module once the tokenizer exists), `true` or `false`;
    it is applied after the listed steps unless `lowercase` is itself listed.
    The `drop_*` flags act on training rows, and on given validation/test files only with
    `filter_eval_files` (see `drop_rows`).
    """

    def __init__(
        self,
        steps: Sequence = (),
        lowercase: bool | str = "auto",
        drop_empty: bool = True,
        drop_duplicates: bool = True,
        drop_leakage: bool = True,
        filter_eval_files: bool = False,
    ):
        self.drop_empty = drop_empty
        self.drop_duplicates = drop_duplicates
        self.drop_leakage = drop_leakage
        self.filter_eval_files = filter_eval_files
        self.steps = [self._normalize_item(item) for item in steps]
        problems = [f"unknown cleaning step '{name}'" for name, _ in self.steps if name not in STEPS]
        if lowercase not in (True, False, "auto"):
            problems.append(f"cleaning.lowercase must be auto, true or false, got {lowercase!r}")
        if problems:
            raise LitNlpError(
                "; ".join(problems) + f" (known steps: {', '.join(STEPS)}); fix data.cleaning.steps"
            )
        self.lowercase = lowercase
        self._build()

    @staticmethod
    def _normalize_item(item) -> tuple[str, dict]:
        if isinstance(item, str):
            return item, {}
        if hasattr(item, "items") and len(item) == 1:
            (name, options), = item.items()
            return str(name), dict(options or {})
        raise LitNlpError(f"cleaning step {item!r} must be a name or a one-key mapping name: {{options}}")

    def _build(self) -> None:
        names = [name for name, _ in self.steps]
        self._fns = [STEPS[name](**options) for name, options in self.steps]
        if self.lowercase is True and "lowercase" not in names:
            self._fns.append(str.lower)

    def resolve_lowercase(self, tokenizer_lowercases: bool) -> None:
        """Settle `lowercase: auto` from the tokenizer (an uncased vocabulary gains nothing from
        case, and lowercasing first makes duplicate detection see "Great" and "great" as one)."""
        if self.lowercase == "auto":
            self.lowercase = bool(tokenizer_lowercases)
            self._build()

    def __call__(self, text: str) -> str:
        for fn in self._fns:
            text = fn(text)
        return text

    def to_config(self) -> dict:
        """The exact settings, for the run dir, the checkpoint and the export."""
        return {
            "steps": [{name: options} if options else name for name, options in self.steps],
            "lowercase": self.lowercase,
            "drop_empty": self.drop_empty,
            "drop_duplicates": self.drop_duplicates,
            "drop_leakage": self.drop_leakage,
            "filter_eval_files": self.filter_eval_files,
        }


def drop_rows(splits: dict, key_columns: list[str], cleaner: TextCleaner,
              required_columns: list[str] | None = None, gold_columns: dict[str, str] | None = None,
              drop_conflicts: bool = True, eval_splits: Sequence[str] = ()) -> tuple[dict, dict]:
    """Drop rows, per split, and count each by reason.

    Training rows are dropped when a `required_columns` value is empty (default: the first key
    column; `empty`), as exact duplicates after the first (`duplicate`), with `drop_conflicts`
    as every copy of a text that occurs with different labels (its gold label is ambiguous;
    off for generation, where one source may have several references: `conflicting_labels`),
    and when their key text already occurs in an earlier split or in an evaluation file
    (`leakage`). With texts unique per split, splits carved out of train later cannot share
    text either.

    `eval_splits` names the splits read from evaluation files (a given validation or test
    file): those are scored as given, so duplicates, conflicts and text shared with training
    stay in them and leakage is removed from the training side instead; SQuAD's dev set keeps
    all its 10,570 questions. `cleaner.filter_eval_files` filters them like training rows.
    A row whose `gold_columns` value is empty ({column: reason}) cannot be trained on or
    scored and is dropped from every split, evaluation files included.

    `splits` maps split name -> DataFrame of cleaned text (+ label), in priority order (train
    first). Returns the filtered frames and `{"<split>/<reason>": count}` of the rows dropped.
    """
    from lit_nlp.data.dedup import RowHashes

    hashes = {name: RowHashes.of(frame, key_columns, required_columns or key_columns[:1], gold_columns)
              for name, frame in splits.items()}
    keep, dropped = drop_rows_hashed(hashes, cleaner, drop_conflicts, eval_splits)
    out = {name: frame[keep[name]].reset_index(drop=True) for name, frame in splits.items()}
    return out, dropped


def drop_rows_hashed(hashes: dict, cleaner: TextCleaner, drop_conflicts: bool = True,
                     eval_splits: Sequence[str] = ()) -> tuple[dict, dict]:
    """`drop_rows` over the rows' hashes ({split: lit_nlp.data.dedup.RowHashes}), as the
    streamed preparation keeps them: ({split: boolean mask of the rows kept}, dropped counts)."""
    from lit_nlp.data.dedup import drop_masks

    whole = [] if cleaner.filter_eval_files else list(eval_splits)
    return drop_masks(hashes, cleaner.drop_empty, cleaner.drop_duplicates, cleaner.drop_leakage, drop_conflicts,
                      whole)


def log_dropped(dropped: dict, eval_sources: dict[str, str], read: dict[str, int]) -> None:
    """Log what `drop_rows` dropped; a row removed from an evaluation file is a warning that
    names the file, since the score is then not over the whole file, and so is a training row
    without a label."""
    for key, count in dropped.items():
        split, reason = key.split("/", 1)
        if split in eval_sources:
            log.warning("%d of the %d rows of the evaluation file %s were removed (%s): the %s score is not "
                        "over the whole file", count, read[split], eval_sources[split], reason, split)
        elif reason in ("empty_label", "empty_target"):  # a file problem rather than a cleaning choice
            log.warning("%d of the %d %s rows have no %s and were dropped", count, read[split], split, reason[6:])
        else:
            log.info("cleaning dropped %d %s rows (%s)", count, split, reason)

"""TextCleaner steps, options and order; drop_rows (empty, duplicates, leakage)."""

from __future__ import annotations

import pandas as pd
import pytest

from lit_nlp.data.cleaning import STEPS, TextCleaner, drop_rows
from lit_nlp.errors import LitNlpError

DEFAULT_STEPS = ["unicode", "html", "urls", "emails", "mentions", "contractions", "whitespace"]


def one(step, text, **kwargs):
    return TextCleaner([step], lowercase=False, **kwargs)(text)


# ----------------------------------------------------------------- single steps
def test_unicode_nfkc_folds_fullwidth_ligatures_and_nbsp():
    assert one("unicode", "ＡＢＣ ﬁne\u00a0film") == "ABC fine film"


def test_unicode_form_option():
    # NFC composes "e" + combining acute but keeps the ligature; NFKC would unfold it
    text = "cafe\u0301 \ufb01"
    assert TextCleaner([{"unicode": {"form": "NFC"}}], lowercase=False)(text) == "caf\u00e9 \ufb01"
    assert one("unicode", text) == "caf\u00e9 fi"


def test_html_tags_and_entities():
    assert one("html", "<b>Great</b>&amp;<br/>fun &quot;x&quot; &lt;3") == " Great & fun \"x\" <3"


def test_urls_replaced_with_default_and_custom_token():
    text = "see https://ex.com/a?b=1 and www.foo.org now"
    assert one("urls", text) == "see <url> and <url> now"
    assert TextCleaner([{"urls": {"token": "[link]"}}], lowercase=False)(text) == "see [link] and [link] now"
    assert one("urls", "HTTP://EX.COM x") == "<url> x"


def test_emails_replaced():
    assert one("emails", "mail bob.s+x@example.co.uk ok") == "mail <email> ok"
    assert TextCleaner([{"emails": {"token": "E"}}], lowercase=False)("a@b.com") == "E"


def test_mentions_replaced_but_not_inside_emails():
    assert one("mentions", "hi @alice and @bob_2!") == "hi @user and @user!"
    assert one("mentions", "bob@example.com") == "bob@example.com"
    # emails before mentions (the default order) keeps the address intact as one token
    assert TextCleaner(["emails", "mentions"], lowercase=False)("@ann: bob@ex.com") == "@user: <email>"


@pytest.mark.parametrize("text, expected", [
    ("I can't go", "I cannot go"),
    ("it won't work", "it will not work"),
    ("Can't stop", "Cannot stop"),
    ("Won't stop", "Will not stop"),
    ("it isn't", "it is not"),
    ("I'm here", "I am here"),
    ("we're, you've, they'll", "we are, you have, they will"),
    ("don\u2019t", "do not"),
    ("Don\u2019t", "Do not"),
    ("shan't", "shall not"),
    # ambiguous: 's (is / possessive) and 'd (had / would) are left alone
    ("He's the film's star, he'd say", "He's the film's star, he'd say"),
])
def test_contractions(text, expected):
    assert one("contractions", text) == expected


def test_whitespace_collapses_and_strips():
    assert one("whitespace", "  a \t b \n\n c  ") == "a b c"


def test_lowercase_step():
    assert TextCleaner(["lowercase"], lowercase=False)("GrEaT Film") == "great film"


# ----------------------------------------------------------------- order and options
def test_default_pipeline_end_to_end():
    cleaner = TextCleaner(DEFAULT_STEPS, lowercase=True)
    text = "<p>Ｉ  can\u2019t&nbsp;believe @ann mailed me@x.org https://t.co/abc !</p>"
    assert cleaner(text) == "i cannot believe @user mailed <email> <url> !"


def test_step_order_matters():
    text = "Hi <b>"
    # a tag becomes a space: whitespace must run after html to remove it
    assert TextCleaner(["html", "whitespace"], lowercase=False)(text) == "Hi"
    assert TextCleaner(["whitespace", "html"], lowercase=False)(text) == "Hi  "
    # a mention-like "@bc.com" becomes "@user.com" when mentions run first, an email otherwise
    assert TextCleaner(["mentions", "emails"], lowercase=False)("x a@bc.com @bc.com") == "x <email> @user.com"
    # html after urls would strip the "<url>" token itself (it looks like a tag): html goes first
    assert TextCleaner(["urls", "html"], lowercase=False)("<a>www.x.org</a>") == "  "
    assert TextCleaner(["html", "urls"], lowercase=False)("<a>www.x.org</a>") == " <url> "


def test_no_steps_is_identity():
    assert TextCleaner([], lowercase=False)("  <b>Keep</b> ME ") == "  <b>Keep</b> ME "


# ----------------------------------------------------------------- lowercase true/false/auto
def test_lowercase_true_applied_after_listed_steps():
    cleaner = TextCleaner([{"urls": {"token": "[LINK]"}}], lowercase=True)
    # appended after the steps: the replacement token is lowercased too
    assert cleaner("See HTTP://x.io") == "see [link]"


def test_lowercase_listed_step_keeps_its_position():
    cleaner = TextCleaner(["lowercase", {"urls": {"token": "[LINK]"}}], lowercase=True)
    assert cleaner("See HTTP://x.io") == "see [LINK]"


def test_lowercase_false_keeps_case():
    assert TextCleaner(DEFAULT_STEPS, lowercase=False)("Great FILM") == "Great FILM"


def test_lowercase_auto_waits_for_tokenizer():
    cleaner = TextCleaner(DEFAULT_STEPS, lowercase="auto")
    assert cleaner("Great FILM") == "Great FILM"
    cleaner.resolve_lowercase(True)
    assert cleaner.lowercase is True
    assert cleaner("Great FILM") == "great film"

    cased = TextCleaner(DEFAULT_STEPS, lowercase="auto")
    cased.resolve_lowercase(False)
    assert cased.lowercase is False
    assert cased("Great FILM") == "Great FILM"


def test_resolve_lowercase_does_not_override_explicit_setting():
    cleaner = TextCleaner([], lowercase=False)
    cleaner.resolve_lowercase(True)
    assert cleaner.lowercase is False and cleaner("ABC") == "ABC"
    cleaner = TextCleaner([], lowercase=True)
    cleaner.resolve_lowercase(False)
    assert cleaner.lowercase is True and cleaner("ABC") == "abc"


# ----------------------------------------------------------------- errors
def test_unknown_step_names_it():
    with pytest.raises(LitNlpError, match="stemming") as info:
        TextCleaner(["unicode", "stemming"])
    assert "\n" not in str(info.value)
    # the message lists the known steps so the user can fix the config
    assert all(name in str(info.value) for name in STEPS)


def test_unknown_steps_reported_together_with_bad_lowercase():
    with pytest.raises(LitNlpError) as info:
        TextCleaner(["stemming", "lemmas"], lowercase="yes")
    msg = str(info.value)
    assert "stemming" in msg and "lemmas" in msg and "lowercase" in msg


def test_bad_step_item():
    with pytest.raises(LitNlpError):
        TextCleaner([{"urls": {}, "html": {}}])
    with pytest.raises(LitNlpError):
        TextCleaner([3])


# ----------------------------------------------------------------- to_config round trip
def test_to_config_round_trip():
    cleaner = TextCleaner(["unicode", "html", {"urls": {"token": "[link]"}}, {"mentions": {"token": "@u"}},
                           "contractions", "whitespace"], lowercase=True,
                          drop_empty=False, drop_duplicates=True, drop_leakage=False)
    config = cleaner.to_config()
    again = TextCleaner(**config)
    assert again.to_config() == config
    assert config["steps"][2] == {"urls": {"token": "[link]"}}
    assert config["drop_empty"] is False and config["drop_leakage"] is False
    samples = ["<i>Wow</i> https://x.y @bob can\u2019t  STOP", "ＦＵＬＬ width &amp; more", ""]
    assert [again(t) for t in samples] == [cleaner(t) for t in samples]
    assert again(samples[0]) == "wow [link] @u cannot stop"


def test_to_config_records_resolved_lowercase():
    cleaner = TextCleaner(["whitespace"], lowercase="auto")
    assert cleaner.to_config()["lowercase"] == "auto"
    cleaner.resolve_lowercase(True)
    again = TextCleaner(**cleaner.to_config())
    assert again.lowercase is True and again("A  B") == "a b"


# ----------------------------------------------------------------- drop_rows
def frame(texts, labels=None):
    return pd.DataFrame({"text": texts, "label": labels or ["a"] * len(texts)})


def test_drop_rows_empty_duplicates_and_leakage_counted_per_split():
    splits = {
        "train": frame(["good", "", "bad", "good", "ok"], ["p", "n", "n", "p", "p"]),
        "validation": frame(["good", "fine", "fine", "", "new"], ["p", "p", "p", "n", "n"]),
        "test": frame(["bad", "fine", "other"], ["n", "p", "p"]),
    }
    cleaner = TextCleaner([], lowercase=False)
    out, dropped = drop_rows(splits, ["text"], cleaner)
    assert out["train"]["text"].tolist() == ["good", "bad", "ok"]
    assert out["validation"]["text"].tolist() == ["fine", "new"]
    # "bad" is in train, "fine" is in validation: a later split never repeats an earlier one
    assert out["test"]["text"].tolist() == ["other"]
    assert dropped == {
        "train/empty": 1, "train/duplicate": 1,
        "validation/empty": 1, "validation/duplicate": 1, "validation/leakage": 1,
        "test/leakage": 2,
    }
    assert list(out["train"].index) == [0, 1, 2]


def test_drop_rows_leakage_ignores_label():
    splits = {"train": frame(["same text"], ["p"]), "test": frame(["same text", "x"], ["n", "n"])}
    out, dropped = drop_rows(splits, ["text"], TextCleaner([], lowercase=False))
    assert out["test"]["text"].tolist() == ["x"]
    assert dropped == {"test/leakage": 1}


def test_drop_rows_flags_off_keep_everything():
    splits = {"train": frame(["a", "", "a"]), "validation": frame(["a", "b"])}
    cleaner = TextCleaner([], lowercase=False, drop_empty=False, drop_duplicates=False, drop_leakage=False)
    out, dropped = drop_rows(splits, ["text"], cleaner)
    assert len(out["train"]) == 3 and len(out["validation"]) == 2
    assert dropped == {}


def test_drop_rows_pairs_use_both_columns_as_key():
    splits = {
        "train": pd.DataFrame({"text": ["q", "q"], "text_pair": ["a1", "a2"], "label": ["x", "y"]}),
        "test": pd.DataFrame({"text": ["q", "q"], "text_pair": ["a1", "a3"], "label": ["x", "x"]}),
    }
    out, dropped = drop_rows(splits, ["text", "text_pair"], TextCleaner([], lowercase=False))
    assert len(out["train"]) == 2
    assert out["test"]["text_pair"].tolist() == ["a3"]
    assert dropped == {"test/leakage": 1}


def test_drop_rows_evaluation_files_are_kept_whole():
    # a validation and a test file as given: duplicates, conflicting labels and text shared with
    # train stay in them (scored as given); the training copies of their text go instead
    splits = {
        "train": frame(["good", "bad", "ok", "ok"], ["p", "n", "p", "p"]),
        "validation": frame(["good", "fine", "fine", "", "same", "same"], ["p", "p", "p", "n", "p", "n"]),
        "test": frame(["bad", "fine", "other"], ["n", "p", "p"]),
    }
    out, dropped = drop_rows(splits, ["text"], TextCleaner([], lowercase=False), eval_splits=["validation", "test"])
    assert out["validation"]["text"].tolist() == ["good", "fine", "fine", "", "same", "same"]
    assert out["test"]["text"].tolist() == ["bad", "fine", "other"]
    assert out["train"]["text"].tolist() == ["ok"]
    assert dropped == {"train/duplicate": 1, "train/leakage": 2}
    # filter_eval_files: the evaluation files are filtered like training rows, as before
    cleaner = TextCleaner([], lowercase=False, filter_eval_files=True)
    out, dropped = drop_rows(splits, ["text"], cleaner, eval_splits=["validation", "test"])
    assert out["validation"]["text"].tolist() == ["fine"]
    assert dropped == {"train/duplicate": 1, "validation/empty": 1, "validation/duplicate": 1,
                       "validation/conflicting_labels": 2, "validation/leakage": 1, "test/leakage": 2}


def test_drop_rows_rows_without_gold_leave_every_split():
    splits = {"train": frame(["a", "b", "c"], ["p", "", "n"]), "test": frame(["d", "e"], ["", "p"])}
    cleaner = TextCleaner([], lowercase=False, drop_empty=False, drop_duplicates=False, drop_leakage=False)
    out, dropped = drop_rows(splits, ["text"], cleaner, gold_columns={"label": "empty_label"}, eval_splits=["test"])
    assert out["train"]["text"].tolist() == ["a", "c"] and out["test"]["text"].tolist() == ["e"]
    assert dropped == {"train/empty_label": 1, "test/empty_label": 1}


def test_log_dropped_names_the_evaluation_file(caplog):
    from lit_nlp.data.cleaning import log_dropped

    with caplog.at_level("INFO", logger="lit_nlp.data.cleaning"):
        log_dropped({"train/duplicate": 3, "train/empty_label": 4, "test/empty_label": 2}, {"test": "dev.csv"},
                    {"train": 50, "test": 40})
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["4 of the 50 train rows have no label and were dropped",
                        "2 of the 40 rows of the evaluation file dev.csv were removed (empty_label): "
                        "the test score is not over the whole file"]

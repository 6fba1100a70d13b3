"""The commands in README.md and docs/*.md run as written: every `python train.py ...` line of
their shell code blocks composes with the real conf/ and passes the checks train() runs before
it builds anything, without training; and every relative link in them finds its file and
heading. A doc command that stops composing (a renamed key, a removed option) fails here,
named by file and line."""

from __future__ import annotations

import copy
import functools
import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep
from hydra.errors import ConfigCompositionException, OverrideParseException
from omegaconf import DictConfig, OmegaConf

from conftest import CONF_DIR, ROOT
from lit_nlp.config_checks import check_config
from lit_nlp.config_errors import config_error_line
from lit_nlp.trainer_args import trainer_overrides

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*```(\S*)\s*$")
SHELL = ("", "bash", "sh", "shell")  # the fenced blocks whose lines are commands
SEPARATORS = ("&&", "||", ";", "|")
# what a doc writes in place of a run's time-stamped dir name or the scheduler's job id
PLACEHOLDERS = {"<date>_<time>": "2026-01-01_00-00-00", "$SLURM_JOB_ID": "12345"}
# `resume=<run dir>` composes the saved config.yaml of a run that only exists after training
# (run_dir.resume_argv), so it is dropped; the overrides beside it compose against conf/, as
# that run's config did
SKIPPED_KEYS = ("resume",)
# the run dir is Hydra's at run time (${hydra:runtime.output_dir}), which a compose lacks;
# nothing is written there
OUTPUT_DIR = "outputs/runs/docs_check"
# doc commands that do not compose today, reported rather than changed; strict, so that a
# fixed command fails here until its entry goes
KNOWN_BROKEN: dict[str, str] = {}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, logical line) of the shell code blocks: `\\`-continued lines joined."""
    out, language, pending, start = [], None, "", 0
    for number, line in enumerate(path.read_text().split("\n"), 1):
        fence = FENCE.match(line)
        if fence:
            language = None if language is not None else fence.group(1)
            continue
        if language not in SHELL:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line.strip()))
        pending = ""
    return out


def _without_comment(line: str) -> str:
    """The line up to a `#` that starts a word outside quotes, as the shell reads it."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _train_args(tokens: list[str]) -> list[str] | None:
    """The arguments of train.py in one shell command (`python train.py`, `srun python
    train.py`, `torchrun ... train.py`, after `VAR=value` prefixes), or None."""
    for i, token in enumerate(tokens):
        if token == "train.py" or token.endswith("/train.py"):
            launcher = [t for t in tokens[:i] if not re.match(r"^\w+=", t)]
            if any(Path(t).name in ("python", "python3", "torchrun") for t in launcher):
                return tokens[i + 1:]
            return None
    return None


def doc_commands() -> list:
    """One pytest param per train.py command, with the id `<file>:<line>`."""
    params = []
    for path in DOCS:
        for number, line in _code_lines(path):
            if "train.py" not in line:
                continue
            tokens, command = shlex.split(_without_comment(line)), []
            for token in [*tokens, "&&"]:
                if token not in SEPARATORS:
                    command.append(token)
                    continue
                args = _train_args(command)
                if args is not None:
                    broken = KNOWN_BROKEN.get(" ".join(args))
                    marks = [pytest.mark.xfail(reason=broken, strict=True)] if broken else []
                    params.append(pytest.param(args, id=f"{_rel(path)}:{number}", marks=marks))
                command = []
    return params


def _fill_placeholders(arg: str) -> str:
    for placeholder, value in PLACEHOLDERS.items():
        arg = arg.replace(placeholder, value)
    return arg


def override_sets(args: list[str]) -> list[list[str]]:
    """The Hydra overrides that train.py composes for `args`: without `-m` and the skipped
    keys, `trainer.<argument>=` made `++trainer.<argument>=` as train.py makes it, and for a
    sweep one set per swept value (the other swept keys at their first value), since Hydra's
    compose takes no sweep."""
    flags = [a for a in args if a.startswith("-")]
    assert set(flags) <= {"-m", "--multirun"}, f"a flag this test does not know: {flags}"
    overrides = [_fill_placeholders(a) for a in args if not a.startswith("-")
                 and a.split("=", 1)[0].lstrip("+~") not in SKIPPED_KEYS]
    overrides = trainer_overrides(overrides)
    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for text, override in zip(overrides, parsed):
        if not override.is_sweep_override():
            choices.append([text])
            continue
        key = override.get_key_element()
        sweep = override.value()
        if isinstance(sweep, IntervalSweep):  # Optuna's interval(a, b): its lower end
            values = [str(sweep.start)]
        else:
            values = list(override.sweep_string_iterator())
        choices.append([f"{key}={value}" for value in values])
    first = [values[0] for values in choices]
    sets = [first]
    for i, values in enumerate(choices):
        sets += [[*first[:i], value, *first[i + 1:]] for value in values[1:]]
    return sets


def _is_group(override) -> bool:
    """A config group choice (`model=bert_tiny`, `hydra/launcher=slurm`), not a key."""
    return "/" in override.key_or_group or (CONF_DIR / override.key_or_group).is_dir()


@functools.cache
def _defaults_composed(group_overrides: tuple[str, ...]) -> DictConfig:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=list(group_overrides), return_hydra_config=True)


def compose_train(overrides: list[str]) -> DictConfig:
    """`compose("train", overrides)` in Hydra's own two steps: the config groups' files merged
    (the costly step, 0.1 to 0.2 s, so once per distinct set of group choices: 27 for the 57
    override sets of the docs today), then the key overrides applied to a copy of it by Hydra's
    own function, as compose applies them after merging. The result is compose's config, but
    for Hydra's record of the overrides (hydra.overrides, hydra.job.override_dirname)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    cfg = copy.deepcopy(_defaults_composed(tuple(o.input_line for o in parsed if _is_group(o))))
    ConfigLoaderImpl._apply_overrides_to_config([o for o in parsed if not _is_group(o)], cfg)
    return cfg


def check_composed(overrides: list[str]) -> None:
    """Compose as train.py does, resolve every interpolation, then run train()'s own first
    check (types and ranges of the keys typed most)."""
    cfg = compose_train([f"paths.output_dir={OUTPUT_DIR}", *overrides])
    # a `${...}` naming no key fails here; of Hydra's own node, what reads the run's config
    # (the SLURM launcher's sizes, the Optuna sweeper's storage), not what is set at run time
    for key in [*(k for k in cfg if k != "hydra"), "hydra.launcher", "hydra.sweeper"]:
        node = OmegaConf.select(cfg, key)  # a value is resolved here
        if OmegaConf.is_config(node):
            OmegaConf.to_container(node, resolve=True)
    # a GPU command is checked on any machine: the check that this machine has the GPUs the
    # command asks for (config_checks.device_problem) is the one left out
    if str(cfg.trainer.get("accelerator")) in ("gpu", "cuda", "mps"):
        cfg.trainer.accelerator = "cpu"
    check_config(cfg)


COMMANDS = doc_commands()


def test_the_docs_hold_the_train_commands():
    # a broken extraction (a fence or a launcher it no longer sees) would pass every test below
    assert len(COMMANDS) >= 50, [p.id for p in COMMANDS]
    assert {p.id.split(":")[0] for p in COMMANDS} >= {"README.md", "docs/training.md", "docs/sweeps.md",
                                                      "docs/multi_gpu.md", "docs/extractive_qa.md"}


@pytest.mark.parametrize("args", COMMANDS)
def test_a_doc_command_composes_and_passes_the_config_checks(args):
    try:
        for overrides in override_sets(args):
            check_composed(overrides)
    except (ConfigCompositionException, OverrideParseException) as err:
        pytest.fail(f"error: {config_error_line(err)}", pytrace=False)  # the line train.py prints


def test_the_readme_s_first_code_block_is_ci_s_two_commands():
    # .ci/run runs the lines between README.md's first two fences and requires exactly two: the
    # set-up command, then the test command
    lines = (ROOT / "README.md").read_text().split("\n")
    first, second = [i for i, line in enumerate(lines) if line.startswith("```")][:2]
    setup, tests = lines[first + 1:second]
    assert setup.startswith("pip install") and tests == "pytest"


# ----------------------------------------------------------------- links
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _outside_code_blocks(path: Path) -> list[str]:
    lines, in_code = [], False
    for line in path.read_text().split("\n"):
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code:
            lines.append(line)
    return lines


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a markdown file: lower case, punctuation dropped,
    spaces made hyphens, a repeated one numbered."""
    seen: dict[str, int] = {}
    out = set()
    for line in _outside_code_blocks(path):
        heading = re.match(r"^#{1,6} (.*)$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_relative_links_find_their_file_and_heading(path):
    broken = []
    prose = "\n".join(re.sub(r"`[^`]*`", "", line) for line in _outside_code_blocks(path))
    for target in LINK.findall(prose):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with that anchor in {_rel(linked)}")
    assert not broken, broken

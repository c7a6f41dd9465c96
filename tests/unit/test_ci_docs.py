"""The CI snippets of ``docs/CI.md`` are valid YAML and call ``baselinr`` as the CLI
defines it: every command exists, every option is one of its options, and a
choice written out (``--output markdown``) is one it accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import yaml

from tests.support.cli import command_at

DOC = Path(__file__).resolve().parents[2] / "docs" / "CI.md"
# (command, option) pairs whose choice values are not checked against the snippets (none today).
VALUE_NOT_CHECKED: set[tuple[str, str]] = set()


def snippets() -> list[Any]:
    return [yaml.safe_load(block) for block in re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)]


def shell_lines(snippet: Any) -> list[str]:
    """Every shell line of a workflow's ``run`` steps or a job's ``script``."""
    texts: list[str] = []
    for job in snippet.get("jobs", {}).values():
        texts += [step["run"] for step in job["steps"] if "run" in step]
    for key, job in snippet.items():
        if key != "jobs" and isinstance(job, dict) and "script" in job:
            texts += job["script"]
    return [line for text in texts for line in text.splitlines()]


def invocations(lines: list[str]) -> list[list[str]]:
    """``baselinr`` command lines, each cut at the first shell operator or redirection."""
    found = []
    for line in lines:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        for i, token in enumerate(tokens):
            if token == "baselinr":
                words = []
                for word in tokens[i + 1 :]:
                    if set(word) <= set("|&;<>()"):
                        break
                    words.append(word)
                found.append(words)
    return found


def test_both_snippets_are_there_and_load() -> None:
    github, gitlab = snippets()
    # YAML 1.1 (PyYAML) reads the key "on" as True; GitHub reads it as "on".
    assert github[True]["pull_request"]["paths"] and "check" in github["jobs"]
    assert gitlab["migrations"]["rules"][0]["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'


def test_each_snippet_lints_tests_and_posts_the_plan() -> None:
    for snippet in snippets():
        calls = [" ".join(words[:2]) for words in invocations(shell_lines(snippet))]
        assert {"migrate lint", "migrate test", "migrate apply"} <= set(calls), calls
        assert any("--dry-run" in w and "markdown" in w for w in invocations(shell_lines(snippet)))


def test_every_command_and_option_exists() -> None:
    calls = [words for snippet in snippets() for words in invocations(shell_lines(snippet))]
    assert len(calls) >= 8
    for words in calls:
        group, name, *args = words
        command = command_at(group, name)
        options = {opt: p for p in command.params if isinstance(p, click.Option) for opt in (*p.opts, *p.secondary_opts)}
        for i, arg in enumerate(args):
            if not arg.startswith("--"):
                continue
            assert arg in options, f"baselinr {group} {name} has no option {arg}"
            param = options[arg]
            if isinstance(param.type, click.Choice) and (name, arg) not in VALUE_NOT_CHECKED:
                assert args[i + 1] in param.type.choices, f"baselinr {group} {name} {arg} {args[i + 1]}"

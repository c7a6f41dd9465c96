"""Fuzz tier: generated config files and command lines keep the CLI's promises.

For every input (hypothesis-generated, plus the checked-in seed corpus in
``corpus/``), the ``baselinr`` CLI must give: an exit code of the README's
table (0-4), one line on stderr when it fails (and under ``--output json``
one JSON document on stdout), no traceback, no "Unexpected error", and never
the password (every config carries ``SECRET``). Most inputs run in-process
(``tests.support.cli.run``); a sample runs as real processes with an address
space limit and a timeout, which bound memory and time (a hang or a blow-up
fails the test; no timing is asserted otherwise).

Databases are SQLite files in a scratch directory and PostgreSQL/MySQL
addresses on a closed 127.0.0.1 port: nothing leaves the machine. The
figures (inputs tried, by outcome) are printed at the end of the module.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shlex
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.cli import ROOT, Result, run
from tests.support.servers import free_port

SECRET = "Fuzz-S3cret-Pa55"
CORPUS = Path(__file__).with_name("corpus")
DOCUMENTED = {0, 1, 2, 3, 4}
MEMORY_LIMIT = 1024 * 1024 * 1024  # bytes of address space for a subprocess
PROCESS_TIMEOUT = 60  # seconds; a hang fails the test
FIGURES: Counter[str] = Counter()
CLOSED_PORT = free_port()  # nothing listens there: connection refused at once


@contextlib.contextmanager
def inside(path: Path) -> Iterator[None]:
    """Run with ``path`` as the working directory: a relative SQLite path a
    generated config names is created there, not in the repository."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def check(r: Result, args: list[str], *, source: str) -> None:
    """The promises, for one input."""
    where = f"{source}: {args!r}\nstdout: {r.out[:2000]}\nstderr: {r.err[:2000]}"
    assert r.code in DOCUMENTED, where
    both = r.out + r.err
    assert "Traceback" not in both, where
    assert "Unexpected error" not in both, where
    assert SECRET not in both, where
    if json_output(args):
        doc = json.loads(r.out)  # the whole of stdout: exactly one document
        assert isinstance(doc, dict) and "ok" in doc, where
    if r.code != 0 and (r.code != 1 or r.err.strip()):
        assert len(r.err.strip().splitlines()) == 1, where
    FIGURES[f"{source} exit {r.code}"] += 1


def json_output(args: list[str]) -> bool:
    """Whether JSON was asked for: the last output format given wins, as click reads it."""
    fmt = "text"
    for i, a in enumerate(args):
        if a == "--":
            break
        if a in ("--output", "-o") and i + 1 < len(args):
            fmt = args[i + 1]
        elif a.startswith("--output="):
            fmt = a[len("--output=") :]
        elif a.startswith("-o") and not a.startswith("--") and len(a) > 2:
            fmt = a[2:]
    return fmt == "json"


# --- the seed corpus -----------------------------------------------------------------


def fill(text: str, scratch: Path) -> str:
    return text.replace("{dir}", str(scratch)).replace("{secret}", SECRET).replace('"{closed}"', str(CLOSED_PORT))


CONFIGS = sorted(CORPUS.glob("*.yml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_corpus_config(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = path.read_text()
    expected = int(text.splitlines()[0].removeprefix("# expect:").strip())
    cfg = tmp_path / "config.yml"
    cfg.write_text(fill(text, tmp_path))
    for command in (["status"], ["validate"], ["apply", "--dry-run"], ["status", "--output", "json"]):
        args = ["migrate", *command, "--config", str(cfg)]
        with inside(tmp_path):
            r = run(capsys, *args)
        check(r, args, source="corpus")
        if expected != 1 or command[0] == "status":  # a fresh database: status 1, a dry run 0
            assert r.code == expected, (path.name, command, r.err)


def corpus_lines() -> list[tuple[int, str]]:
    lines = (CORPUS / "args.txt").read_text().splitlines()
    return [(int(line.split(" ", 1)[0]), line.split(" ", 1)[1]) for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize(("expected", "line"), corpus_lines())
def test_corpus_arguments(expected: int, line: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text(fill((CORPUS / "ok_sqlite.yml").read_text(), tmp_path))
    args = shlex.split(line.replace("{config}", str(cfg)).replace("{dir}", str(tmp_path)))
    with inside(tmp_path):
        r = run(capsys, *args)
    check(r, args, source="corpus")
    assert r.code == expected, (line, r.err)


# --- generated configs --------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["${HOME}", "${NOPE_UNSET_1}", "${NOPE:default}", "${", "}", "%s", "'", '"', "\\", "\x00", "-c x=1"]),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12
)


@st.composite
def connections(draw: st.DrawFn, scratch: Path) -> dict[str, Any]:
    kind = draw(st.sampled_from(["sqlite", "postgres", "mysql", "postgresql", "mariadb", "sqlite3", "oracle", "bigquery"]))
    conn: dict[str, Any] = {"type": draw(values) if draw(st.integers(0, 5)) == 0 else kind}
    conn["password"] = SECRET
    if kind.startswith("sqlite"):
        conn["filepath"] = str(scratch / f"{uuid.uuid4().hex[:8]}.db")
    else:
        conn["host"] = "127.0.0.1"
        conn["port"] = CLOSED_PORT
        conn["database"] = "fuzz"
    for key in ("host", "port", "database", "username", "schema", "filepath", "extra_params", "runs_table"):
        if draw(st.integers(0, 12)) == 0:
            conn[key] = draw(values)
    if draw(st.integers(0, 5)) == 0:
        conn["extra_params"] = {"connect_args": draw(st.dictionaries(st.text(max_size=10), values, max_size=3))}
    if conn.get("host") not in (None, "127.0.0.1", "localhost") or not isinstance(conn.get("host", ""), str):
        conn["host"] = "127.0.0.1"  # never leave the machine
    return conn


def render(draw: st.DrawFn, data: dict[str, Any]) -> str:
    text = yaml.safe_dump(data, allow_unicode=True)
    mutation = draw(st.integers(0, 15))
    if mutation == 0:  # cut it anywhere
        text = text[: draw(st.integers(0, len(text)))]
    elif mutation == 1:  # splice in YAML syntax
        pos = draw(st.integers(0, len(text)))
        text = (
            text[:pos]
            + draw(
                st.sampled_from(
                    ["&a ", "*a", "*b ", "!!python/object:os.system ", "[", "{", ": :", "\t", "---\n", "%YAML 9\n", "\ufeff"]
                )
            )
            + text[pos:]
        )
    elif mutation == 2:  # a deep document
        depth = draw(st.integers(10, 20000))
        text += "deep: " + "[" * depth + "]" * depth + "\n"
    elif mutation == 3:  # aliases, a few or very many
        width = draw(st.integers(1, 12))
        levels = draw(st.integers(1, 9))
        text += "l0: &l0 [" + ",".join(["x"] * width) + "]\n"
        for i in range(1, levels + 1):
            text += f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]\n"
    return text


@st.composite
def config_texts(draw: st.DrawFn, scratch: Path) -> str:
    data: dict[str, Any] = {"storage": {"connection": draw(connections(scratch))}}
    if draw(st.integers(0, 3)) == 0:
        data["storage"][draw(st.sampled_from(["runs_table", "results_table", "create_tables"]))] = draw(values)
    if draw(st.integers(0, 5)) == 0:
        data = draw(st.sampled_from([{"storage": draw(values)}, {"other": data}, data["storage"]]))
    return render(draw, data)


OVERRIDES = [
    "BASELINR_STORAGE__CONNECTION__PORT",
    "BASELINR_STORAGE__CONNECTION__TYPE",
    "BASELINR_STORAGE__CONNECTION__SCHEMA",
    "BASELINR_STORAGE__CONNECTION__EXTRA_PARAMS",
    "BASELINR_STORAGE__CREATE_TABLES",
    "BASELINR_STORAGE__RUNS_TABLE",
]
override_values = st.one_of(
    st.sampled_from(["true", "5432.9", "0", "65536", " 5432 ", "", "sqlite", "oracle", "{}", "[1]", "x;drop"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20),
)

COMMANDS = [
    ["migrate", "status"],
    ["migrate", "validate"],
    ["migrate", "apply", "--dry-run"],
    ["migrate", "apply"],
    ["migrate", "rollback", "--target", "0", "--dry-run"],
    ["migrate", "repair", "--dry-run"],
]


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_generated_configs(data: st.DataObject, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / f"{uuid.uuid4().hex[:8]}.yml"
    cfg.write_text(data.draw(config_texts(tmp_path)), encoding="utf-8")
    command = data.draw(st.sampled_from(COMMANDS))
    output = data.draw(st.sampled_from([[], ["--output", "json"]]))
    args = [*command, "--config", str(cfg), *output]
    # BASELINR_A__B overrides, as a Kubernetes Secret or a CI job would set them.
    overrides = data.draw(st.dictionaries(st.sampled_from(OVERRIDES), override_values, max_size=2))
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        with inside(tmp_path):
            result = run(capsys, *args)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    check(result, args, source="generated config")


# --- generated command lines ----------------------------------------------------------

numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "0", "-0", "1.5", "0x10", "", " ", "١٢", "10" * 40]),
    st.text(max_size=12),
)
valid = st.one_of(
    st.tuples(st.sampled_from(["--target", "-t"]), st.integers(0, 12).map(str)).map(list),
    st.tuples(st.just("--lock-timeout"), st.sampled_from(["0", "0.5", "5", "60"])).map(list),
    st.sampled_from([["--dry-run"], ["--resume"], ["--output", "json"], ["-o", "text"]]),
)
options = st.one_of(
    valid,
    valid,
    valid,
    valid,
    valid,
    valid,
    st.tuples(st.sampled_from(["--target", "-t", "--lock-timeout", "--version", "-v", "--output", "-o"]), numbers).map(list),
    st.tuples(st.sampled_from(["--output", "-o"]), st.sampled_from(["json", "text", "yaml", ""])).map(list),
    st.sampled_from([["--dry-run"], ["--resume"], ["--force"], ["--help"], ["--nope"], ["-x"], ["--"], ["extra"]]),
    st.text(max_size=8).map(lambda t: [t]),
)


VERBS = ["status", "apply", "validate", "rollback", "repair", "baseline", "nope", "status", "apply"]


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_generated_arguments(data: st.DataObject, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.yml"
    if not cfg.exists():
        cfg.write_text(fill((CORPUS / "ok_sqlite.yml").read_text(), tmp_path))
    verb = data.draw(st.sampled_from(VERBS))
    extra = [a for opt in data.draw(st.lists(options, max_size=3)) for a in opt]
    args = ["migrate", verb, "--config", str(cfg), *extra]
    # Help is text by design, even next to --output json; --debug adds a traceback on purpose.
    args = [a for a in args if a not in ("--help", "-h", "--debug")]
    with inside(tmp_path):
        result = run(capsys, *args)
    check(result, args, source="generated arguments")


# --- real processes: bounded time and memory ------------------------------------------


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_bounded(args: list[str], cwd: Path) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "baselinr", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        preexec_fn=_limit_memory,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_generated_inputs_in_bounded_processes(data: st.DataObject, tmp_path: Path) -> None:
    cfg = tmp_path / f"{uuid.uuid4().hex[:8]}.yml"
    cfg.write_text(data.draw(config_texts(tmp_path)), encoding="utf-8")
    command = data.draw(st.sampled_from(COMMANDS))
    extra = [a for opt in data.draw(st.lists(options, max_size=2)) for a in opt if a not in ("--help", "-h", "--debug")]
    args = [*command, "--config", str(cfg), *extra]
    check(run_bounded(args, tmp_path), args, source="bounded process")


@pytest.mark.parametrize("name", ["alias_bomb.yml", "port_huge.yml"])
def test_corpus_blow_ups_in_bounded_processes(name: str, tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text(fill((CORPUS / name).read_text(), tmp_path))
    for args in (["migrate", "status", "--config", str(cfg)], ["migrate", "apply", "--config", str(cfg), "--target", "1" * 30]):
        r = run_bounded(args, tmp_path)
        check(r, args, source="bounded process")
        assert r.code == 2, r.err


def test_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """Print the inputs tried, by outcome (runs last in this module)."""
    assert sum(FIGURES.values()) > 0
    lines = [f"{count:6d}  {key}" for key, count in sorted(FIGURES.items())]
    with capsys.disabled():
        print("\nfuzz figures (inputs tried, by outcome):\n" + "\n".join(lines))

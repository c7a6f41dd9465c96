"""``baselinr-schema wait``: set a BaselinrSchema's target (optionally) and wait until the operator has reached it.

Run by the pre-install/pre-upgrade hook Job of the ``helm/baselinr-schema``
chart, so that an application's ``helm upgrade`` waits for its schema (Helm
does not wait on custom resources by itself), and by hand or from any
pipeline: ``baselinr-schema wait NAME --namespace NS --target N``.

With ``--apply`` the command first declares the resource by server-side apply
(field manager ``baselinr-schema``): ``spec.targetVersion`` from ``--target``
and the rest of the spec from the JSON object in ``BASELINR_SCHEMA_SPEC``
(or ``--spec``), and with ``--retry TOKEN`` the ``baselinr.io/retry``
annotation, so that a run that failed before starts again (the Helm hook
passes the release revision: each ``helm upgrade`` retries once). Then it
watches that one object (a watch with a field
selector, not polling) and decides on every change with the pure ``judge``:

    (wait)  with --retry: until status.retryToken shows the operator took that retry in
    exit 0  status.observedGeneration >= metadata.generation, currentVersion == target, Ready True
    exit 4  the operator gave up on this generation: phase Failed and not retrying, or Stalled True;
            the operator's message (the engine's error) is printed
    exit 1  the resource is suspended at another version (nothing will move it)
    exit 3  timeout (the last phase and message are printed), or the API server unreachable
    exit 2  bad input: arguments, the spec JSON, no kubeconfig, RBAC refusal, a spec the API rejects

On a failure the message also goes to the container's termination message
(``--result-file``), where ``kubectl describe pod`` shows it. This module is
part of the operator package, not of the engine: it talks to the Kubernetes
API through ``kube.SchemaClient`` (a short-lived client of its own process)
and takes the exit codes from ``baselinr.errors``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from baselinr.errors import EXIT_INVALID, EXIT_MIGRATION_FAILED, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from baselinr_operator import API_VERSION, GROUP, KIND, PLURAL, RETRY_ANNOTATION, kube
from baselinr_operator.status import READY, RECONCILING, STALLED, Phase

FIELD_MANAGER = "baselinr-schema"
SPEC_ENV = "BASELINR_SCHEMA_SPEC"
WATCH_CHUNK_SECONDS = 120  # one watch request at most this long; then list again and watch on
RECONNECT_SECONDS = 2.0


class WaitError(Exception):
    """A reason to stop waiting, with the process exit code it maps to."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True)
class Verdict:
    """What one look at the resource says: ``exit_code`` None means keep waiting."""

    exit_code: int | None
    message: str

    @property
    def final(self) -> bool:
        return self.exit_code is not None


# --- pure decisions -----------------------------------------------------------------


def _condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for c in status.get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == type_:
            return c
    return None


def _is_true(status: Mapping[str, Any], type_: str, generation: int) -> bool:
    """Condition ``type_`` is True and was written for this generation (or says nothing about it)."""
    c = _condition(status, type_)
    if c is None or c.get("status") != "True":
        return False
    observed = c.get("observedGeneration")
    return observed is None or int(observed) >= generation


def judge(obj: Mapping[str, Any] | None, target: int, retry: str | None = None) -> Verdict:
    """Decide from one BaselinrSchema (as the API returns it) whether waiting for ``target`` is over.

    With ``retry``, a verdict waits until the operator has taken in that retry token: until then a
    failure in the status is the one from before the retry.
    """
    if obj is None:
        return Verdict(None, "not found (yet)")
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    generation = int(meta.get("generation") or 0)
    observed = status.get("observedGeneration")
    observed = -1 if observed is None else int(observed)
    phase = str(status.get("phase") or Phase.PENDING)
    current = status.get("currentVersion")
    message = str(status.get("message") or "")
    where = f"phase {phase}, current version {current if current is not None else 'unknown'}"
    if spec.get("targetVersion") != target:
        return Verdict(None, f"spec.targetVersion is {spec.get('targetVersion')}, waiting for it to be {target}")
    if observed < generation:
        return Verdict(None, f"the operator has not acted on generation {generation} yet ({where})")
    if retry is not None and status.get("retryToken") != retry:
        return Verdict(None, f"the operator has not acted on retry {retry!r} yet ({where})")
    if _is_true(status, READY, generation) and current == target:
        return Verdict(EXIT_OK, f"at version {target} and Ready")
    retrying = _is_true(status, RECONCILING, generation)
    if _is_true(status, STALLED, generation) or (phase == Phase.FAILED and not retrying):
        return Verdict(EXIT_MIGRATION_FAILED, failure_message(status) or f"{phase} without a message")
    if phase == Phase.SUSPENDED:
        return Verdict(EXIT_INVALID, f"suspended at version {current}: {message}".rstrip(": "))
    return Verdict(None, f"{where}" + (f": {message}" if message else ""))


def failure_message(status: Mapping[str, Any]) -> str:
    """The operator's account of a failure: the Stalled (or Ready) condition's message, then validation errors."""
    text = ""
    for type_ in (STALLED, READY):
        c = _condition(status, type_)
        if c and c.get("message"):
            text = str(c["message"])
            break
    text = text or str(status.get("message") or "")
    errors = [str(e) for e in (status.get("validation") or {}).get("errors") or []]
    if status.get("valid") is False and errors and not all(e in text for e in errors):
        text = f"{text}; validation errors: {'; '.join(errors)}" if text else "; ".join(errors)
    return text


def desired(name: str, namespace: str, target: int, spec: Mapping[str, Any], retry: str | None = None) -> dict[str, Any]:
    """The object the hook declares by server-side apply: ``spec`` with ``targetVersion`` set to ``target``."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if retry is not None:
        metadata["annotations"] = {RETRY_ANNOTATION: retry}
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": {**spec, "targetVersion": target}}


def parse_spec(text: str | None) -> dict[str, Any]:
    """The spec JSON object (without targetVersion); bad JSON or a non-object is a usage error."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise WaitError(f"{SPEC_ENV} is not valid JSON: {exc}", EXIT_USAGE) from None
    if not isinstance(value, dict):
        raise WaitError(f"{SPEC_ENV} must be a JSON object (the BaselinrSchema spec), got {type(value).__name__}", EXIT_USAGE)
    if "targetVersion" in value:
        raise WaitError(f"{SPEC_ENV} must not set targetVersion: pass --target", EXIT_USAGE)
    return value


# --- the Kubernetes side --------------------------------------------------------------


class Kube:
    """``kube.SchemaClient`` with each failure turned into a ``WaitError`` carrying its exit code."""

    def __init__(self, kubeconfig: str | None) -> None:
        try:
            self.client = kube.SchemaClient(kubeconfig)
        except kube.ConfigError as exc:
            raise WaitError(str(exc), EXIT_USAGE) from None
        self.default_namespace = self.client.default_namespace()

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        with _mapped():
            return self.client.apply(body, FIELD_MANAGER)

    def list_one(self, namespace: str, name: str) -> tuple[dict[str, Any] | None, str]:
        with _mapped():
            return self.client.list_one(namespace, name)

    def watch(self, namespace: str, name: str, resource_version: str, seconds: int) -> Iterator[dict[str, Any] | None]:
        with _mapped():
            yield from self.client.watch(namespace, name, resource_version, seconds)


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except kube.ApiFailure as exc:
        raise api_error(exc) from None


def api_error(exc: kube.ApiFailure) -> WaitError:
    """Exit 3 for what may pass (unreachable, 5xx, 429), else 2 (RBAC refusal, a spec the API rejects, no CRD)."""
    if exc.status is None:
        return WaitError(f"{exc.what}: {exc.detail}", EXIT_UNAVAILABLE)
    detail = exc.detail
    if exc.status == 404 and "could not find the requested resource" in detail:
        detail = f"the {KIND} CRD ({PLURAL}.{GROUP}) is not installed"
    code = EXIT_UNAVAILABLE if exc.status >= 500 or exc.status == 429 else EXIT_USAGE
    return WaitError(f"{exc.what}: {exc.status} {detail}", code)


def wait_for(
    kube: Kube,
    namespace: str,
    name: str,
    target: int,
    timeout: float,
    say: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    retry: str | None = None,
) -> Verdict:
    """Watch the object until ``judge`` gives a final verdict or ``timeout`` seconds pass.

    Each round lists the object (its state and a resourceVersion), then watches
    from there for at most ``WATCH_CHUNK_SECONDS``; a watch that ends (its time
    is up, or the version expired) starts the next round. Losing the API server
    after the first successful read is retried until the deadline.
    """
    deadline = clock() + timeout
    last = ""
    connected = False

    def note(verdict: Verdict) -> Verdict:
        nonlocal last
        if verdict.message != last:
            say(verdict.message)
            last = verdict.message
        return verdict

    while True:
        try:
            obj, version = kube.list_one(namespace, name)
            connected = True
            verdict = note(judge(obj, target, retry))
            remaining = deadline - clock()
            if not verdict.final and remaining > 0:
                for obj in kube.watch(namespace, name, version, max(1, min(WATCH_CHUNK_SECONDS, int(remaining + 0.999)))):
                    verdict = note(judge(obj, target, retry))
                    if verdict.final or clock() >= deadline:
                        break
        except WaitError as exc:
            if not connected or exc.exit_code != EXIT_UNAVAILABLE or clock() + RECONNECT_SECONDS >= deadline:
                raise
            say(f"{exc.message} (retrying)")
            time.sleep(RECONNECT_SECONDS)
            continue
        if verdict.final:
            return verdict
        if clock() >= deadline:
            return Verdict(EXIT_UNAVAILABLE, f"timed out after {timeout:g}s waiting for version {target} ({verdict.message})")


# --- the command line -----------------------------------------------------------------


def write_result(path: str | None, text: str) -> None:
    """Best effort: the termination message file (absent outside a Pod)."""
    if path:
        with suppress(OSError):
            Path(path).write_text(text[:4000])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Wait for a BaselinrSchema to reach a schema version (used by Helm hooks and pipelines)."""


@cli.command("wait")
@click.argument("name")
@click.option(
    "--namespace",
    "-n",
    envvar="BASELINR_SCHEMA_NAMESPACE",
    help="Namespace of the BaselinrSchema (default: the kubeconfig context's, or the Pod's).",
)
@click.option(
    "--target", type=click.IntRange(min=1), help="The version to wait for (default: the resource's spec.targetVersion)."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=600.0,
    show_default=True,
    metavar="SECONDS",
    help="Give up (exit 3) after this long.",
)
@click.option(
    "--apply", "apply_", is_flag=True, help=f"First set the target by server-side apply (the rest of the spec: {SPEC_ENV})."
)
@click.option(
    "--spec",
    "spec_json",
    envvar=SPEC_ENV,
    metavar="JSON",
    help=f"The rest of the spec for --apply, a JSON object. Env: {SPEC_ENV}.",
)
@click.option(
    "--retry",
    default=None,
    metavar="TOKEN",
    help=f"With --apply: set the {RETRY_ANNOTATION} annotation to TOKEN, so that a failed run starts again "
    "(a new value each time, e.g. the Helm release revision).",
)
@click.option(
    "--kubeconfig", envvar="KUBECONFIG", metavar="PATH", help="Kubeconfig file (default: $KUBECONFIG, else in-cluster)."
)
@click.option(
    "--result-file", default=None, metavar="PATH", help="Also write the final message here (a Pod's terminationMessagePath)."
)
def wait_command(
    name: str,
    namespace: str | None,
    target: int | None,
    timeout: float,
    apply_: bool,
    spec_json: str | None,
    retry: str | None,
    kubeconfig: str | None,
    result_file: str | None,
) -> None:
    """Wait until BaselinrSchema NAME is at --target and Ready; with --apply, set that target first."""
    try:
        message = _wait(name, namespace, target, timeout, apply_, spec_json, kubeconfig, retry)
    except WaitError as exc:
        write_result(result_file, exc.message)
        raise
    write_result(result_file, message)


def _wait(
    name: str,
    namespace: str | None,
    target: int | None,
    timeout: float,
    apply_: bool,
    spec_json: str | None,
    kubeconfig: str | None,
    retry: str | None = None,
) -> str:
    if apply_ and target is None:
        raise WaitError("--apply needs --target", EXIT_USAGE)
    if retry is not None and not apply_:
        raise WaitError("--retry needs --apply", EXIT_USAGE)
    retry = retry or None
    spec = parse_spec(spec_json) if apply_ else {}
    kube = Kube(kubeconfig)
    ns = namespace or kube.default_namespace
    where = f"{KIND} {ns}/{name}"
    if apply_ and target is not None:
        applied = kube.apply(desired(name, ns, target, spec, retry))
        click.echo(f"{where}: spec.targetVersion set to {target} (generation {applied['metadata'].get('generation')})")
    if target is None:
        obj, _ = kube.list_one(ns, name)
        if obj is None:
            raise WaitError(f"{where} not found (pass --target to wait for it to appear)", EXIT_USAGE)
        target = int(obj["spec"]["targetVersion"])
    click.echo(f"{where}: waiting up to {timeout:g}s for version {target}")
    verdict = wait_for(kube, ns, name, target, timeout, lambda text: click.echo(f"{where}: {text}"), retry=retry)
    if verdict.exit_code == EXIT_OK:
        return f"{where}: {verdict.message}"
    raise WaitError(f"{where}: {verdict.message}", verdict.exit_code or EXIT_UNAVAILABLE)


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``baselinr-schema``; returns the exit code (errors are one line on stderr)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        cli.main(args=args, prog_name="baselinr-schema", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except WaitError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - a bug still ends in one line, not a traceback
        first = str(exc).splitlines()[0] if str(exc) else ""
        click.echo(f"Error: unexpected {exc.__class__.__name__}: {first}", err=True)
        return EXIT_INVALID
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

"""Leader election on a ``coordination.k8s.io/v1`` Lease: of the operator's replicas, one acts.

Started by ``handlers.startup`` when ``BASELINR_OPERATOR_LEADER_ELECTION`` is on (the chart's
default, with two replicas); read by ``handlers`` before every reconcile and every write
(``Leadership.leads``). The rules are those of client-go's ``leaderelection`` package:

* A candidate takes the Lease when it has none, when its holder released it (no
  ``holderIdentity``), or when the record (holder and ``renewTime``) has not changed for
  ``leaseDurationSeconds`` as measured on the candidate's own monotonic clock since it first
  saw that record. Clocks of different machines are never compared.
* Every write carries the ``resourceVersion`` read, so of two candidates one wins (409 for
  the other).
* The leader renews every ``retry_period``. It may act only until ``renew_deadline`` after
  the start of its last successful renewal; ``renew_deadline`` is shorter than the lease
  duration, so it stops acting before any other candidate can see the Lease expire. A leader
  frozen (SIGSTOP) and thawed finds its deadline past on its monotonic clock (which runs
  while a process is stopped) and stops at once, before any write.
* On a clean shutdown the leader releases the Lease (empty holder), so the standby takes
  over within one ``retry_period`` instead of a lease duration.

The pure part (``decide``) is unit-tested; ``Elector`` runs it on a thread against the API
through ``kube``.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import kopf

from baselinr_operator import kube
from baselinr_operator.settings import OperatorSettings

log = logging.getLogger("baselinr_operator")


@dataclass(frozen=True)
class ElectionSettings:
    lease_name: str
    lease_namespace: str
    identity: str
    lease_seconds: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    @classmethod
    def of(cls, settings: OperatorSettings) -> ElectionSettings:
        """The operator's settings; this replica's identity is its pod's name and a random suffix."""
        identity = f"{os.environ.get('HOSTNAME') or 'baselinr-operator'}_{secrets.token_hex(3)}"
        return cls(
            lease_name=settings.lease_name,
            lease_namespace=settings.lease_namespace or kube.own_namespace(),
            identity=identity,
            lease_seconds=settings.lease_seconds,
            renew_deadline=settings.renew_deadline,
            retry_period=settings.retry_period,
        )


class Move(Enum):
    TAKE = "take"  # write the Lease with this candidate as holder
    WAIT = "wait"  # someone else holds it and it has not expired


@dataclass
class Observed:
    """The Lease record as this candidate last saw it change, on its own monotonic clock."""

    holder: str | None = None
    renew_time: str | None = None
    since: float = 0.0


def record_of(lease: Mapping[str, Any] | None) -> tuple[str | None, str | None, float | None]:
    spec = (lease or {}).get("spec") or {}
    duration = spec.get("leaseDurationSeconds")
    return spec.get("holderIdentity") or None, spec.get("renewTime"), float(duration) if duration else None


def decide(lease: Mapping[str, Any] | None, observed: Observed, me: str, now: float, default_seconds: float) -> Move:
    """Pure: whether a candidate that does not lead may take the Lease now. Updates ``observed``."""
    holder, renew_time, duration = record_of(lease)
    if (holder, renew_time) != (observed.holder, observed.renew_time):
        observed.holder, observed.renew_time, observed.since = holder, renew_time, now
    if lease is None or holder is None or holder == me:
        return Move.TAKE
    if now - observed.since >= (duration or default_seconds):
        return Move.TAKE
    return Move.WAIT


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_body(settings: ElectionSettings, current: Mapping[str, Any] | None, *, renew: bool) -> dict[str, Any]:
    """The Lease this candidate writes: taken (a new acquireTime, one more transition) or renewed."""
    meta: dict[str, Any] = {"name": settings.lease_name, "namespace": settings.lease_namespace}
    spec = dict((current or {}).get("spec") or {})
    if current is not None:
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        meta["labels"] = (current["metadata"].get("labels") or {}) | {"app.kubernetes.io/managed-by": "baselinr-operator"}
    else:
        meta["labels"] = {"app.kubernetes.io/managed-by": "baselinr-operator"}
    now = _stamp()
    if not renew:
        transitions = int(spec.get("leaseTransitions") or 0)
        spec["leaseTransitions"] = transitions + 1 if spec.get("holderIdentity") else transitions
        spec["acquireTime"] = now
    spec["holderIdentity"] = settings.identity
    spec["leaseDurationSeconds"] = max(round(settings.lease_seconds), 1)
    spec["renewTime"] = now
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}


class Leadership:
    """Whether this process may act now. Always True when leader election is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._until = 0.0  # monotonic deadline of acting without another successful renewal
        self._lock = threading.Lock()

    def leads(self) -> bool:
        if not self.enabled:
            return True
        with self._lock:
            return time.monotonic() < self._until

    def extend(self, until: float) -> None:
        with self._lock:
            self._until = until

    def end(self) -> None:
        with self._lock:
            self._until = 0.0


class Elector:
    """Campaigns for the Lease on a thread; calls ``on_elected`` when it takes it and ``on_lost`` when it no
    longer may act (a renewal refused or overdue)."""

    def __init__(
        self,
        settings: ElectionSettings,
        leadership: Leadership,
        on_elected: Callable[[], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.leadership = leadership
        self.on_elected = on_elected
        self.on_lost = on_lost
        self._stop = threading.Event()
        self._observed = Observed()
        self._lease: dict[str, Any] | None = None
        self._leading = False
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)

    def start(self) -> None:
        log.info(
            "Leader election on Lease %s/%s as %s: waiting to lead",
            self.settings.lease_namespace,
            self.settings.lease_name,
            self.settings.identity,
        )
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop campaigning; the leader gives the Lease up so that a standby takes over at once."""
        self._stop.set()
        self._thread.join(timeout=self.settings.retry_period + 5)
        was_leading = self._leading
        self.leadership.end()
        self._leading = False
        if release and was_leading and self._lease is not None:
            body = lease_body(self.settings, self._lease, renew=True)
            body["spec"]["holderIdentity"] = None
            body["spec"]["leaseDurationSeconds"] = 1
            try:
                kube.write_lease(self.settings.lease_namespace, body)
                log.info("Released the lead (Lease %s/%s)", self.settings.lease_namespace, self.settings.lease_name)
            except (kopf.TemporaryError, kopf.PermanentError) as exc:
                log.warning("Could not release the Lease: %s", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except (kopf.TemporaryError, kopf.PermanentError) as exc:
                log.warning("Leader election: %s", exc)
            except Exception:  # the election must go on whatever one round met
                log.exception("Leader election round failed")
            if self._leading and not self.leadership.leads():
                self._lose("its renewal is overdue")
            self._stop.wait(self.settings.retry_period)

    def _step(self) -> None:
        started = time.monotonic()
        if self._leading:
            if not self.leadership.leads():
                return  # overdue (e.g. the process was frozen): lose it in _run, before any write
            written = kube.write_lease(self.settings.lease_namespace, lease_body(self.settings, self._lease, renew=True))
            if written is None:
                self._lose("another replica holds the Lease")
                return
            self._lease = written
            self.leadership.extend(started + self.settings.renew_deadline)
            return
        lease = kube.get_lease(self.settings.lease_namespace, self.settings.lease_name)
        if decide(lease, self._observed, self.settings.identity, started, self.settings.lease_seconds) is Move.WAIT:
            return
        written = kube.write_lease(self.settings.lease_namespace, lease_body(self.settings, lease, renew=False))
        if written is None:
            return  # another candidate won this round
        self._lease = written
        self._leading = True
        self.leadership.extend(started + self.settings.renew_deadline)
        log.info("Took the lead (Lease %s/%s, holder %s)", self.settings.lease_namespace, self.settings.lease_name,
                 self.settings.identity)  # fmt: skip
        self.on_elected()

    def _lose(self, why: str) -> None:
        self._leading = False
        self.leadership.end()
        self._lease = None
        log.warning("Lost the lead: %s; standing by", why)
        self.on_lost()

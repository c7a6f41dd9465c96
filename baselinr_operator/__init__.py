"""The BaselinrSchema operator (kopf): keeps a storage database at the schema version a resource declares.

Run by ``baselinr-operator`` (``__main__``), which starts ``kopf run`` on
``handlers``. Layers, each calling only the ones below it:

    handlers   kopf entry points: gather facts, call the planner, carry out its plan
    planner    pure: (resource, its Job's outcome) -> new status, Job to create, Events
    follow     pure: a run's Job in flight or finished -> the run's next step, or its end
    plans      pure: the planner's Facts and Plan, and a run's bookkeeping (its Job named once)
    status     the one writer of ``.status``: steps, phases, conditions, reasons
    jobs       pure builders of the backup, migrate and validate Jobs
    outcome    pure: a finished Job and its Pod -> the engine's JSON result; a running one's log -> lock wait
    kube       the one module that talks to the Kubernetes API
    runtime    the process's in-memory state (claims, locks, schedule) on kopf's memo
    claims, metrics, spec, policy, settings   helpers
    waiter     ``baselinr-schema wait`` (the Helm hook), through ``kube`` too

Of the engine, the operator imports ``baselinr.errors`` only: the exit codes
the Jobs' ``baselinr job ...`` commands end with, which ``outcome`` reads and
``baselinr-schema`` exits with, so both sides share one table. It never talks
to a database and never reads its credentials: its Jobs run the engine, and
only they mount the config Secret. The engine never imports this package
(``.importlinter``, checked by ``tests/unit/test_layers.py``).
"""

GROUP = "baselinr.io"
VERSION = "v1alpha1"
PLURAL = "baselinrschemas"
KIND = "BaselinrSchema"
API_VERSION = f"{GROUP}/{VERSION}"
MANAGED_BY = "baselinr-operator"
RETRY_ANNOTATION = "baselinr.io/retry"

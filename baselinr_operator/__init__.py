"""The BaselinrSchema operator (kopf): keeps a storage database at the schema version a resource declares.

Run by ``baselinr-operator`` (``__main__``), which starts ``kopf run`` on
``handlers``. Layers, each calling only the ones below it:

    handlers   kopf entry points: gather facts, call the planner, carry out its plan
    planner    pure: (resource, its Job's outcome) -> new status, Job to create, Events
    status     the one writer of ``.status``: phases, conditions, reasons
    jobs       pure builders of the backup, migrate and validate Jobs
    outcome    pure: a finished Job and its Pod -> the engine's JSON result
    kube       the one module that talks to the Kubernetes API
    claims, metrics, spec, settings   helpers

The operator does not import the engine: its Jobs run it (``baselinr job
...``), and only they mount the database credentials. The engine never
imports this package.
"""

GROUP = "baselinr.io"
VERSION = "v1alpha1"
PLURAL = "baselinrschemas"
KIND = "BaselinrSchema"
API_VERSION = f"{GROUP}/{VERSION}"
MANAGED_BY = "baselinr-operator"
RETRY_ANNOTATION = "baselinr.io/retry"

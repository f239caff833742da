"""`sovereign operator setup | run`: the Kubernetes operator (kopf), under its own ServiceAccount."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from sovereign.devenv.state import attached, controlplane_dir, dev_kubeconfig, state_root
from sovereign.errors import BadInput
from sovereign.policy.screening_source import SCREENING_LIST_ENV, Screening

app = typer.Typer(
    no_args_is_help=True,
    help="The sovereign operator: LlamaDeployments -> RayServices when the policy allows, admission, drift.",
)

KubeconfigOpt = Annotated[
    Path | None,
    typer.Option(
        envvar="KUBECONFIG",
        exists=True,
        dir_okay=False,
        help="Administrator kubeconfig (default: $KUBECONFIG, else the running 'dev' control plane's).",
    ),
]


def _default_credentials() -> Path:
    return state_root() / "operator"


def _default_ca_dir() -> Path:
    return controlplane_dir("dev") / "pki"


@app.command()
def setup(
    out: Annotated[
        Path | None, typer.Option(help="Folder for the operator's credentials (default: STATE_DIR/operator).")
    ] = None,
    ca_dir: Annotated[
        Path | None,
        typer.Option(
            help="CA (ca.crt, ca.key) the API server trusts (default: the 'dev' control plane's pki)."
        ),
    ] = None,
    webhook_port: Annotated[
        int,
        typer.Option(
            help="Port the webhook will listen on.", min=1, max=65535, envvar="SOVEREIGN_WEBHOOK_PORT"
        ),
    ] = 9443,
    webhook_host: Annotated[
        str, typer.Option(help="Address the API server reaches the webhook at.")
    ] = "127.0.0.1",
    token_hours: Annotated[float, typer.Option(help="Lifetime of the ServiceAccount token.", min=0.2)] = 24.0,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """As an administrator: apply the CRDs and RBAC, issue the operator's ServiceAccount token and
    webhook certificate into OUT, and register the admission webhook."""
    from operators.sovereign_operator.credentials import setup as do_setup

    found = do_setup(
        out or _default_credentials(),
        ca_dir or _default_ca_dir(),
        webhook_host,
        webhook_port,
        kubeconfig or dev_kubeconfig(),
        int(token_hours * 3600),
    )
    print(f"operator credentials written to {found.folder}")
    print(f"  run it with: sovereign operator run --credentials {found.folder}")


def _as_of(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"--as-of {value!r}: expected a date written YYYY-MM-DD, e.g. 2027-07-01") from None


@app.command()
def run(
    credentials: Annotated[
        Path | None,
        typer.Option(help="Folder written by 'sovereign operator setup' (default: STATE_DIR/operator)."),
    ] = None,
    drift_interval: Annotated[
        float, typer.Option(help="Seconds between policy-revision checks.", min=0.1)
    ] = 30.0,
    recheck_interval: Annotated[
        float, typer.Option(help="Seconds between full re-evaluations even when nothing changed.", min=1.0)
    ] = 600.0,
    batch_timeout: Annotated[
        float, typer.Option(help="Seconds the OPA server gets for a whole-fleet batch.", min=1.0)
    ] = 120.0,
    as_of: Annotated[
        str | None, typer.Option(help="Judge as of YYYY-MM-DD instead of today (rehearse an expiry).")
    ] = None,
    screening_list: Annotated[
        Path | None,
        typer.Option(
            envvar=SCREENING_LIST_ENV,
            help="Denied-party list (trade.gov CSL JSON); default: the sample `sovereign dev up` installs. "
            "Required: the operator does not start without one.",
        ),
    ] = None,
    ray_image: Annotated[str | None, typer.Option(help="Container image of the Ray pods.")] = None,
    weights_mount: Annotated[
        list[str] | None,
        typer.Option(
            help="POD_PATH=OPERATOR_PATH: where the operator mounts (read-only) the model store the Ray pods "
            "load weights from; admission then verifies each checkpoint's facts and signature there and "
            "refuses weights outside it. Repeatable. Without it only the replicas check weights, at load.",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve the operator's metrics on METRICS_ADDR:PORT/metrics: admission decisions, policy "
            "engine health, deployment compliance, accreditation expiry."
        ),
    ] = None,
    metrics_addr: Annotated[
        str,
        typer.Option(
            help="Address the metrics are served on. Loopback by default: a local operator's metrics are "
            "for the Prometheus beside it; in a pod, 0.0.0.0 so the cluster's Prometheus can scrape it."
        ),
    ] = "127.0.0.1",
    liveness: Annotated[
        str | None, typer.Option(help="Serve kopf's liveness probe here, e.g. http://127.0.0.1:8080/healthz.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Log every handler run.")] = False,
) -> None:
    """Run the operator against the cluster in the credentials' kubeconfig: kopf standalone (no peering),
    cluster-wide, with the admission webhook. The policy engine is the OPA server at $SOVEREIGN_OPA_URL,
    else the signed bundle in-process. Refuses an administrator's (system:masters) identity."""
    from operators.sovereign_operator.credentials import Credentials
    from operators.sovereign_operator.runner import run as run_operator
    from operators.sovereign_operator.runtime import OperatorConfig
    from operators.sovereign_operator.weights_mounts import WeightsMounts
    from serving.manifest import RAY_IMAGE

    Screening.enforcing(screening_list)  # none configured: refuse here, naming the setting (exit 2)
    weights = WeightsMounts.parse(weights_mount or [])
    found = Credentials.load(credentials or _default_credentials())
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    if not verbose:
        # kopf logs every handler run of every object, and aiohttp every webhook request, at INFO: at a
        # thousand deployments, or a hundred reviews a second, CPU and log volume spent saying what the
        # statuses, Events, decision log and metrics say already.
        for chatty in ("kopf.objects", "aiohttp.access"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    config = OperatorConfig(
        kubeconfig=found.kubeconfig,
        drift_interval_s=drift_interval,
        recheck_interval_s=recheck_interval,
        batch_timeout_s=batch_timeout,
        as_of=_as_of(as_of),
        screening_list=screening_list,
        ray_image=ray_image or RAY_IMAGE,
        weights=weights,
    )
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_addr)
    ports = {"webhook": int(found.webhook["port"])} | ({"metrics": metrics_port} if metrics_port else {})
    with attached("operator", found.kubeconfig, ports) as record:
        # What the operator could not do (kopf's handler failures, a status it may not write) is kept with
        # its record: `sovereign request status` names it instead of leaving the user to guess.
        for name, level in (("operators", logging.WARNING), ("kopf", logging.ERROR)):
            logging.getLogger(name).addHandler(record.log_handler(level))
        run_operator(found, config, liveness)

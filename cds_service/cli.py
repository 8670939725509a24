"""The ``ixazomib-cds`` command: serve, load-fixtures, report, verify."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cds_service.config import Config, ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ixazomib-cds", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service under gunicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=None, help="default: from the CPU count")
    serve.add_argument(
        "--front",
        choices=("auto", "nginx", "none"),
        default=None,
        help="nginx in front of gunicorn, or none; default: CDS_FRONT, else auto "
        "(nginx when it is installed)",
    )

    load = commands.add_parser("load-fixtures", help="upload the scenarios to a FHIR server")
    load.add_argument("--fhir-server", required=True, help="FHIR R4 base URL")
    load.add_argument("--token", default=None, help="bearer token for the FHIR server")
    load.add_argument("--fixtures", default=None, help="scenario directory (default: bundled)")

    report = commands.add_parser("report", help="per rule: cards shown, accepted, overridden")
    report.add_argument("--days", type=int, default=None, help="only the last N days")

    _add_verify_parser(commands)

    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args.host, args.port, args.workers, args.front)
        if args.command == "load-fixtures":
            return _load_fixtures(args.fhir_server, args.token, args.fixtures)
        if args.command == "verify":
            return _verify(args)
        return _report(args.days)
    except ConfigError as error:
        print(f"ixazomib-cds: configuration error: {error}", file=sys.stderr)
        return 2


def _serve(host: str, port: int, workers: int | None, front: str | None) -> int:
    from cds_service.serve import front_choice, run_server

    # Fail here, once, with a message that names what to fix, rather than in every worker.
    config = Config.from_env()
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be from 1 to 65535, not {port}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {workers}")
    chosen_front = front_choice(front)
    _check_startup(config)
    return run_server(host, port, workers, front=chosen_front, max_body_bytes=config.max_body_bytes)


def _check_startup(config: Config) -> None:
    """What each worker reads at start-up: the trusted issuers and the database."""
    from cds_service.auth import load_trusted_issuers
    from cds_service.store import open_store

    if config.auth_required and config.trusted_issuers_path is not None:
        try:
            load_trusted_issuers(config.trusted_issuers_path)
        except ValueError as error:
            raise ConfigError(f"CDS_TRUSTED_ISSUERS: {error}") from None
    try:
        store = open_store(config.database_url)
        store.migrate()
        store.close()
    except Exception as error:  # any driver's error: say which setting, not a traceback
        raise ConfigError(
            f"CDS_DATABASE_URL: the database cannot be opened ({type(error).__name__}: {error})"
        ) from None


def _load_fixtures(fhir_server: str, token: str | None, directory: str | None) -> int:
    from cds_service.fixtures import ScenarioError, upload_scenarios

    try:
        count = upload_scenarios(fhir_server, token, directory)
    except ScenarioError as error:
        print(f"ixazomib-cds load-fixtures: {error}", file=sys.stderr)
        return 1
    print(f"loaded {count} scenarios into {fhir_server}")
    return 0


def _report(days: int | None) -> int:
    from cds_service.store import open_store
    from cds_service.store.report import format_report

    config = Config.from_env()
    store = open_store(config.database_url)
    store.migrate()
    since = datetime.now(UTC) - timedelta(days=days) if days else None
    print(format_report(store.rule_report(since)))
    return 0


def _add_verify_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = commands.add_parser(
        "verify",
        help="run the bundled scenarios against a FHIR server and the service",
        description="Load the bundled scenarios into a FHIR server (ids and a tag unique to the "
        "run), call the service for each with EHR-style prefetch and with none, and compare "
        "the recommendations with the expected ones. Exit 0 only when all pass.",
    )
    verify.add_argument("--fhir-server", required=True, help="FHIR R4 base URL")
    verify.add_argument(
        "--service", default=None, help="deployed service base URL (default: an in-process service)"
    )
    verify.add_argument("--fhir-token", default=None, help="bearer token for the FHIR server")
    verify.add_argument(
        "--jwt-key",
        default=None,
        help="PEM private key (P-384 EC or RSA) to sign a CDS Hooks JWT per call to --service",
    )
    verify.add_argument("--jwt-iss", default=None, help="the JWT's iss (with --jwt-key)")
    verify.add_argument("--jwt-kid", default=None, help="the JWT's kid (with --jwt-key)")
    verify.add_argument(
        "--scenario",
        action="extend",
        nargs="+",
        default=[],
        metavar="ID",
        help="only these scenarios (one or more ids, or the option repeated; default: all)",
    )
    verify.add_argument("--fixtures", default=None, help="scenario directory (default: bundled)")
    verify.add_argument("--junit", default=None, metavar="FILE", help="write a JUnit XML report")
    verify.add_argument(
        "--cleanup", action="store_true", help="delete the loaded resources afterwards"
    )


def _verify(args: argparse.Namespace) -> int:
    from cds_service.verify.output import format_table, summary, write_junit
    from cds_service.verify.runner import Outcome, VerifyError, VerifyOptions, verify
    from cds_service.verify.signing import load_signer

    signer = None
    if args.jwt_key or args.jwt_iss or args.jwt_kid:
        if not (args.jwt_key and args.jwt_iss and args.jwt_kid and args.service):
            raise ConfigError("--jwt-key needs --jwt-iss, --jwt-kid and --service")
        try:
            signer = load_signer(args.jwt_key, args.jwt_iss, args.jwt_kid)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    options = VerifyOptions(
        fhir_server=args.fhir_server,
        service=args.service,
        fhir_token=args.fhir_token,
        signer=signer,
        scenario_ids=args.scenario,
        scenario_dir=args.fixtures,
        cleanup=args.cleanup,
    )

    def progress(outcome: Outcome) -> None:  # a run against a sandbox takes minutes
        print(f"{outcome.status:4}  {outcome.scenario} ({outcome.path})", file=sys.stderr)

    try:
        result = verify(options, progress)
    except VerifyError as error:
        print(f"ixazomib-cds verify: {error}", file=sys.stderr)
        return 1
    print(format_table(result.outcomes))
    print(summary(result))
    if args.junit:
        write_junit(result, args.junit)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())

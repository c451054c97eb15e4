"""The annotation parser: each error named by its annotation, warnings, defaults, derived values."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import webhook.annotations
from tests.webhook.support import (
    SETTINGS,
    annotated,
    app_container,
    make_pod,
)
from webhook.admission import Reviewer
from webhook.annotations import (
    CLASSIFIED_LIMIT,
    FIXED_KEYS,
    PARAMETER_GROUPS,
    PREFIX,
    SECRET_GROUP,
    SECRET_GROUPS,
    InjectionSpec,
    ParseResult,
    SpecParser,
    _Parser,
    classify,
    default_annotation_problems,
    parse,
    suggest,
)
from webhook.settings import Settings

BASE = annotated(agent_inject="true", role="app", agent_inject_secret_db="database/creds/app")


def parse_pod(
    extra: dict[str, str] | None = None,
    *,
    settings: Settings = SETTINGS,
    namespace: str = "shop",
    **pod_options: Any,
) -> ParseResult:
    return parse(make_pod({**BASE, **(extra or {})}, **pod_options), settings, namespace=namespace)


def spec_of(extra: dict[str, str] | None = None, **options: Any) -> InjectionSpec:
    result = parse_pod(extra, **options)
    assert result.errors == ()
    assert result.spec is not None
    return result.spec


def only_template(spec: InjectionSpec) -> Any:
    assert spec.agent_config is not None
    (template,) = spec.agent_config.templates
    return template


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            annotated(agent_pre_populate="yes"),
            "agent-pre-populate: expected true or false",
            id="a boolean must be a Go boolean",
        ),
        pytest.param(
            annotated(agent_revoke_grace="soon"),
            "agent-revoke-grace: expected a duration",
            id="a duration must be Go syntax or seconds",
        ),
        pytest.param(
            annotated(agent_limits_mem="lots"),
            "agent-limits-mem: expected a Kubernetes quantity",
            id="a resource must be a quantity",
        ),
        pytest.param(
            annotated(agent_requests_cpu="2", agent_limits_cpu="1"),
            "agent cpu: the request (2) is above the limit (1)",
            id="a request above its limit is refused",
        ),
        pytest.param(
            annotated(agent_inject_file_db="/etc/passwd"),
            "agent-inject-file-db: must be relative",
            id="an absolute file name is refused",
        ),
        pytest.param(
            annotated(agent_inject_file_db="../../etc/passwd"),
            "agent-inject-file-db: must not contain '..'",
            id="a file name climbing out is refused",
        ),
        pytest.param(
            annotated(agent_inject_perms_db="rw"),
            "agent-inject-perms-db: expected an octal file mode",
            id="perms must be octal",
        ),
        pytest.param(
            annotated(role=""),
            "role: required for kubernetes auth",
            id="kubernetes auth needs a role",
        ),
        pytest.param(
            annotated(auth_type="aws"),
            "auth-type: expected one of kubernetes, jwt",
            id="an auth method the agent lacks is refused",
        ),
        pytest.param(
            annotated(agent_pre_populate="false", agent_pre_populate_only="true"),
            "agent-pre-populate-only: asks for the init container only",
            id="pre-populate-only contradicts pre-populate false",
        ),
        pytest.param(
            annotated(agent_run_as_user="0"),
            "agent-run-as-user: 0 (root) is refused",
            id="the agent never runs as root",
        ),
        pytest.param(
            annotated(agent_run_as_same_user="true"),
            "agent-run-as-same-user: needs runAsUser",
            id="same user needs a known app user",
        ),
        pytest.param(
            annotated(agent_share_process_namespace="true"),
            "refusing to enable it",
            id="process sharing the pod turned off is refused",
        ),
        pytest.param(
            annotated(agent_inject_signal_db="HUP"),
            "agent-inject-signal-db: expected SIGNAL:process-name",
            id="a signal needs a process name",
        ),
        pytest.param(
            annotated(agent_inject_signal_db="SIGKILL:nginx"),
            "agent-inject-signal-db: expected SIGNAL:process-name",
            id="a signal outside the safe set is refused",
        ),
        pytest.param(
            annotated(service="vault:8200"),
            "service: expected an http:// or https:// address",
            id="the Vault address needs a scheme",
        ),
        pytest.param(
            annotated(client_cert="/vault/tls/tls.crt"),
            "client-cert and",
            id="a client certificate needs its key",
        ),
        pytest.param(
            annotated(ca_cert="ca.crt"),
            "ca-cert: must be an absolute path",
            id="a CA path must be absolute",
        ),
        pytest.param(
            annotated(agent_json_patch='{"op": "add"}'),
            "agent-json-patch: expected an RFC 6902 JSON patch",
            id="a JSON patch must be a list of operations",
        ),
        pytest.param(
            annotated(agent_init_json_patch="not json"),
            "agent-init-json-patch: expected an RFC 6902 JSON patch",
            id="a JSON patch must be JSON",
        ),
        pytest.param(
            annotated(agent_copy_volume_mounts="nope"),
            "agent-copy-volume-mounts: no container named 'nope'",
            id="copying mounts needs an existing container",
        ),
        pytest.param(
            annotated(agent_inject_template_file_db="db.tmpl"),
            "agent-inject-template-file-db: must be an absolute path",
            id="a template file must be absolute",
        ),
        pytest.param(
            annotated(agent_inject_secret_other="kv/x", agent_inject_file_other="db"),
            "renders to /vault/secrets/db",
            id="two secrets cannot share one file",
        ),
        pytest.param(
            annotated(agent_inject_default_template="yaml"),
            "agent-inject-default-template: expected one of map, json, env",
            id="the default template must be known",
        ),
        pytest.param(
            annotated(secret_volume_path="secrets"),
            "secret-volume-path: must be an absolute path",
            id="the volume path must be absolute",
        ),
        pytest.param(
            annotated(secret_volume_path_db="/vault/../etc"),
            "secret-volume-path-db: must be a clean absolute path",
            id="a per-secret path must be clean",
        ),
        pytest.param(
            annotated(agent_projected_token_expiration="60s"),
            "agent-projected-token-expiration: must be between 600s",
            id="a projected token lives at least ten minutes",
        ),
        pytest.param(
            annotated(agent_service_account_token_volume_name="mine"),
            "agent-service-account-token-volume-name: the pod has no volume named 'mine'",
            id="a named token volume must exist",
        ),
        pytest.param(
            annotated(log_level="loud"),
            "log-level: expected one of",
            id="the log level must be known",
        ),
        pytest.param(
            annotated(template_lease_renewal_threshold="2"),
            "template-lease-renewal-threshold: expected a fraction",
            id="the renewal threshold is a fraction",
        ),
        pytest.param(
            annotated(auth_min_backoff="10s", auth_max_backoff="1s"),
            "auth-max-backoff: must not be below auth-min-backoff",
            id="backoff bounds must be ordered",
        ),
        pytest.param(
            annotated(agent_disable_keep_alives="everything"),
            "agent-disable-keep-alives: expected a comma list",
            id="keep-alive features must be known",
        ),
        pytest.param(
            annotated(agent_cache_listener_port="99999"),
            "agent-cache-listener-port: expected a whole number of at most 65535",
            id="a no-effect annotation is still validated",
        ),
        pytest.param(
            annotated(agent_configmap="Not_A_Name"),
            "agent-configmap: expected the name of a Kubernetes object",
            id="object names must be DNS subdomains",
        ),
        pytest.param(
            annotated(agent_inject_token="maybe"),
            "agent-inject-token: expected true or false",
            id="the token sink must be asked for with a boolean",
        ),
        pytest.param(
            annotated(agent_inject_token="true", agent_inject_file_db="token"),
            "agent-inject-token: the token file /vault/secrets/token is also a secret's file",
            id="the token file cannot be a secret's file",
        ),
    ],
)
def test_each_error_names_the_annotation_and_what_was_expected(
    extra: dict[str, str], expected: str
) -> None:
    pod_options: dict[str, Any] = {}
    if "agent-share-process-namespace" in str(extra):
        pod_options["shareProcessNamespace"] = False
    result = parse_pod(extra, **pod_options)
    assert result.spec is None
    assert any(expected in error for error in result.errors), result.errors
    assert len(set(result.errors)) == len(result.errors), "each problem is reported once"


def test_every_error_is_reported_at_once_not_only_the_first() -> None:
    result = parse_pod(
        annotated(
            agent_pre_populate="yes",
            agent_limits_mem="lots",
            agent_inject_file_db="/abs",
            role="",
        )
    )
    assert len(result.errors) == 4, result.errors


def test_object_names_are_checked_even_when_other_errors_came_first() -> None:
    result = parse_pod(
        annotated(agent_pre_populate="yes", tls_secret="Bad_Name", agent_extra_secret="Bad_Too")
    )
    named = {error.split(":")[0].removeprefix(PREFIX) for error in result.errors}
    assert named == {"agent-pre-populate", "tls-secret", "agent-extra-secret"}, result.errors


@pytest.mark.parametrize(
    "namespace",
    [pytest.param("kube-system", id="kube-system"), pytest.param("kube-public", id="kube-public")],
)
def test_system_namespaces_are_refused_with_a_reason(namespace: str) -> None:
    result = parse_pod(namespace=namespace)
    assert any(f"namespace {namespace} is not allowed" in error for error in result.errors)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            annotated(agent_inject_secrets_cache="kv/x"),
            "did you mean agent-inject-secret-cache?",
            id="a plural typo gets the singular suggested",
        ),
        pytest.param(
            annotated(agent_pre_popluate="false"),
            "did you mean agent-pre-populate?",
            id="a transposition gets the key suggested",
        ),
        pytest.param(
            annotated(agent_inject_tempalte_db="x"),
            "did you mean agent-inject-template-db?",
            id="a typo in a group keeps the secret name",
        ),
        pytest.param(
            annotated(tls_skip_verify="true"),
            "tls-skip-verify: weakens security",
            id="skipping TLS verification is flagged",
        ),
        pytest.param(
            annotated(service="http://vault.vault:8200"),
            "plain http",
            id="plain http to a remote Vault is flagged",
        ),
        pytest.param(
            annotated(agent_cache_enable="true"),
            "agent-cache-enable: has no effect",
            id="the cache has no effect",
        ),
        pytest.param(
            annotated(go_max_procs="4"),
            "go-max-procs: has no effect",
            id="go-max-procs has no effect",
        ),
        pytest.param(
            annotated(agent_telemetry_prometheus_retention_time="30s"),
            "agent-telemetry-*: has no effect",
            id="telemetry has no effect",
        ),
        pytest.param(
            annotated(agent_inject_file_DB="db.txt"),
            "agent-inject-file-DB: has no effect: there is no agent-inject-secret-DB",
            id="a refinement without its secret is flagged",
        ),
        pytest.param(
            annotated(agent_inject_containers="app,ghost"),
            "no container named 'ghost'",
            id="an unknown target container is flagged",
        ),
        pytest.param(
            annotated(agent_inject_template_db="x", agent_inject_template_file_db="/t"),
            "agent-inject-template-file-db: ignored",
            id="an inline template wins over a template file",
        ),
        pytest.param(
            annotated(agent_configmap="agent-config"),
            "not Vault Agent HCL",
            id="a ConfigMap must hold our JSON",
        ),
    ],
)
def test_warnings_explain_typos_weak_settings_and_ignored_annotations(
    extra: dict[str, str], expected: str
) -> None:
    result = parse_pod(extra)
    assert result.errors == ()
    assert any(expected in warning for warning in result.warnings), result.warnings


def test_refinements_without_their_secret_are_flagged_in_key_order() -> None:
    result = parse_pod(
        annotated(
            agent_inject_perms_zeta="0600",
            agent_inject_file_alpha="a.txt",
            agent_inject_file_db="db.txt",
            agent_inject_command_alpha="true",
        )
    )
    assert result.errors == ()
    orphans = [warning for warning in result.warnings if "has no effect" in warning]
    assert orphans == [
        f"vault.hashicorp.com/agent-inject-{group}-{name}: has no effect: there is no "
        f"agent-inject-secret-{name}"
        for group, name in (("command", "alpha"), ("file", "alpha"), ("perms", "zeta"))
    ]


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("http://127.0.0.1:8200", id="IPv4 loopback"),
        pytest.param("http://[::1]:8200", id="IPv6 loopback"),
        pytest.param("http://[::1]", id="IPv6 loopback without a port"),
        pytest.param("http://LocalHost/", id="localhost in any case"),
        pytest.param("http://127.0.0.2:8200", id="anywhere in 127/8"),
    ],
)
def test_plain_http_on_loopback_is_not_flagged(address: str) -> None:
    result = parse_pod(annotated(service=address))
    assert result.spec is not None
    assert not [warning for warning in result.warnings if "plain http" in warning]


def test_a_clean_pod_gets_no_warnings() -> None:
    assert parse_pod().warnings == ()


def test_the_compiled_spec_cannot_be_changed_once_parsed() -> None:
    """The spec's attributes are Final: mypy --strict refuses an assignment in the source, and
    the build the image ships (mypyc) refuses it at run time, which this checks."""
    if not webhook.annotations.__file__ or webhook.annotations.__file__.endswith(".py"):
        pytest.skip("pure Python build: Final is enforced by mypy --strict, not at run time")
    spec = spec_of()
    with pytest.raises(AttributeError):
        spec.mode = "init-only"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        spec.token_volume.mount_path = "/elsewhere"  # type: ignore[misc]
    assert spec.mode == "init-and-sidecar"


def test_defaults_are_those_of_vault_k8s_where_compatible_and_lean_where_not() -> None:
    spec = spec_of()
    assert spec.mode == "init-and-sidecar"
    assert spec.init_first is False
    assert spec.target_containers == ("app",)
    assert [(v.volume_name, v.mount_path) for v in spec.secret_volumes] == [
        ("vault-secrets", "/vault/secrets")
    ]
    assert dict(spec.requests) == {"cpu": "10m", "memory": "32Mi"}
    assert dict(spec.limits) == {"cpu": "250m", "memory": "96Mi"}
    assert (spec.security.run_as_user, spec.security.run_as_group) == (100, 1000)
    assert spec.agent_config is not None
    assert spec.agent_config.auth.role == "app"
    assert spec.agent_config.auth.mount_path == "auth/kubernetes"
    assert spec.agent_config.vault.address == "https://vault.vault.svc:8200"
    assert spec.agent_config.lifecycle.revoke_on_shutdown is True
    template = only_template(spec)
    assert (template.name, template.destination, template.vault_path) == (
        "db",
        "/vault/secrets/db",
        "database/creds/app",
    )
    assert template.default_format == "map"


@pytest.mark.parametrize(
    ("extra", "mode", "wait"),
    [
        pytest.param({}, "init-and-sidecar", True, id="init container and sidecar by default"),
        pytest.param(
            annotated(agent_pre_populate="false"),
            "sidecar-only",
            False,
            id="no init container when pre-populate is false",
        ),
        pytest.param(
            annotated(agent_pre_populate_only="true"),
            "init-only",
            True,
            id="init container only for jobs",
        ),
        pytest.param(
            annotated(agent_native_sidecar="true"),
            "native-sidecar",
            True,
            id="a native sidecar on request",
        ),
        pytest.param(
            annotated(agent_native_sidecar="true", agent_pre_populate="false"),
            "native-sidecar",
            False,
            id="a native sidecar that does not hold the app back",
        ),
        pytest.param(
            annotated(agent_native_sidecar="true", agent_pre_populate_only="true"),
            "init-only",
            True,
            id="pre-populate-only wins over native sidecar",
        ),
    ],
)
def test_the_injection_mode_follows_the_annotations(
    extra: dict[str, str], mode: str, wait: bool
) -> None:
    spec = spec_of(extra)
    assert (spec.mode, spec.wait_for_secrets) == (mode, wait)


def test_the_native_sidecar_setting_applies_cluster_wide_and_sets_a_readiness_file() -> None:
    spec = spec_of(settings=replace(SETTINGS, native_sidecar=True))
    assert spec.mode == "native-sidecar"
    assert spec.agent_config is not None
    assert spec.agent_config.readiness_file == "/home/vault/.vault-agent-ready"
    assert spec_of().agent_config.readiness_file is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("containers", "pod_context", "extra", "mode"),
    [
        pytest.param(
            [app_container(securityContext={"runAsUser": 100})],
            {},
            {},
            0o600,
            id="0600 when the app runs as the agent's uid",
        ),
        pytest.param(
            [app_container()],
            {"runAsUser": 100},
            {},
            0o600,
            id="0600 when the pod level gives the agent's uid",
        ),
        pytest.param(
            [app_container(securityContext={"runAsUser": 2000})],
            {"fsGroup": 3000},
            {},
            0o640,
            id="0640 when the pod has an fsGroup",
        ),
        pytest.param(
            [app_container(securityContext={"runAsUser": 2000, "runAsGroup": 1000})],
            {},
            {},
            0o640,
            id="0640 when the app holds the agent's group",
        ),
        pytest.param(
            [app_container(securityContext={"runAsUser": 2000})],
            {"supplementalGroups": [1000]},
            {},
            0o640,
            id="0640 through supplemental groups",
        ),
        pytest.param([app_container()], {}, {}, 0o644, id="0644 when the app's user is unknown"),
        pytest.param(
            [app_container(securityContext={"runAsUser": 5})],
            {},
            annotated(agent_run_as_same_user="true"),
            0o600,
            id="0600 with agent-run-as-same-user",
        ),
        pytest.param(
            [app_container()],
            {"fsGroup": 3000},
            annotated(agent_inject_perms_db="0400"),
            0o400,
            id="agent-inject-perms overrides the rule",
        ),
    ],
)
def test_default_file_mode_is_the_narrowest_that_lets_the_app_read(
    containers: list[dict[str, Any]], pod_context: dict[str, Any], extra: dict[str, str], mode: int
) -> None:
    spec = spec_of(extra, containers=containers, securityContext=pod_context)
    assert oct(only_template(spec).perms) == oct(mode)


def test_same_user_reads_every_chosen_container_not_only_the_first() -> None:
    containers = [
        app_container("web", securityContext={"runAsUser": 1001}),
        app_container("worker", securityContext={"runAsUser": 1002}),
    ]
    result = parse_pod(annotated(agent_run_as_same_user="true"), containers=containers)
    assert any("different users (1001, 1002)" in error for error in result.errors)
    spec = spec_of(
        annotated(agent_run_as_same_user="true", agent_inject_containers="worker"),
        containers=containers,
    )
    assert spec.security.run_as_user == 1002


@pytest.mark.parametrize(
    ("extra", "pod_options", "settings", "volume", "token_file", "audience"),
    [
        pytest.param(
            {},
            {},
            SETTINGS,
            "kube-api-access-x1y2z",
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            None,
            id="the pod's own ServiceAccount mount, as vault-k8s",
        ),
        pytest.param(
            {},
            {"automountServiceAccountToken": False, "service_account_mount": False},
            SETTINGS,
            "vault-agent-token",
            "/var/run/secrets/vault.hashicorp.com/serviceaccount/token",
            None,
            id="a projected token when automount is off",
        ),
        pytest.param(
            {},
            {"service_account_mount": False},
            SETTINGS,
            "vault-agent-token",
            "/var/run/secrets/vault.hashicorp.com/serviceaccount/token",
            None,
            id="a projected token for a bare pod",
        ),
        pytest.param(
            {},
            {},
            replace(SETTINGS, projected_token=True, projected_token_audience="vault"),
            "vault-agent-token",
            "/var/run/secrets/vault.hashicorp.com/serviceaccount/token",
            "vault",
            id="a projected token when the cluster asks for it",
        ),
        pytest.param(
            annotated(agent_projected_token="true", agent_projected_token_audience="openbao"),
            {},
            SETTINGS,
            "vault-agent-token",
            "/var/run/secrets/vault.hashicorp.com/serviceaccount/token",
            "openbao",
            id="a projected token when the pod asks for it",
        ),
    ],
)
def test_the_agent_logs_in_with_the_right_token(
    *,
    extra: dict[str, str],
    pod_options: dict[str, Any],
    settings: Settings,
    volume: str,
    token_file: str,
    audience: str | None,
) -> None:
    spec = spec_of(extra, settings=settings, **pod_options)
    assert spec.token_volume.volume_name == volume
    assert spec.agent_config is not None
    assert spec.agent_config.auth.token_file == token_file
    if volume == "vault-agent-token":
        assert spec.token_volume.projected is not None
        assert spec.token_volume.projected.audience == audience
        assert spec.token_volume.projected.expiration_seconds == 600
    else:
        assert spec.token_volume.projected is None


def test_a_named_projected_volume_is_used_with_its_own_path() -> None:
    volume = {
        "name": "vault-token",
        "projected": {"sources": [{"serviceAccountToken": {"path": "jwt", "audience": "vault"}}]},
    }
    container = app_container(volumeMounts=[{"name": "vault-token", "mountPath": "/var/run/vault"}])
    pod = make_pod(
        {**BASE, **annotated(agent_service_account_token_volume_name="vault-token")},
        containers=[container],
        service_account_mount=False,
        volumes=[volume],
    )
    spec = parse(pod, SETTINGS, namespace="shop").spec
    assert spec is not None
    assert spec.agent_config is not None
    assert spec.agent_config.auth.token_file == "/var/run/vault/jwt"
    assert spec.token_volume.projected is None


def test_secret_names_are_lower_cased_unless_their_case_is_preserved() -> None:
    lowered = spec_of(annotated(agent_inject_secret_db="", agent_inject_secret_DbCreds="kv/x"))
    assert [t.name for t in lowered.agent_config.templates] == ["dbcreds"]  # type: ignore[union-attr]
    kept = spec_of(
        annotated(
            agent_inject_secret_db="",
            agent_inject_secret_DbCreds="kv/x",
            preserve_secret_case_DbCreds="true",
        )
    )
    assert [t.destination for t in kept.agent_config.templates] == ["/vault/secrets/DbCreds"]  # type: ignore[union-attr]


def test_templates_come_in_a_stable_order_whatever_the_annotation_order() -> None:
    names = ["zeta", "alpha", "mid"]
    forward = spec_of({**annotated(**{f"agent_inject_secret_{n}": f"kv/{n}" for n in names})})
    backward = spec_of(
        {**annotated(**{f"agent_inject_secret_{n}": f"kv/{n}" for n in reversed(names)})}
    )
    assert forward.agent_config == backward.agent_config
    assert [t.name for t in forward.agent_config.templates] == ["alpha", "db", "mid", "zeta"]  # type: ignore[union-attr]


def test_a_template_alone_defines_a_secret_as_in_vault_k8s() -> None:
    spec = spec_of(
        annotated(
            agent_inject_secret_db="",
            agent_inject_template_config='{{ with secret "kv/app" }}{{ .Data.x }}{{ end }}',
        )
    )
    template = only_template(spec)
    assert (template.name, template.vault_path) == ("config", "")
    assert template.contents is not None


def test_a_secret_group_gathers_every_refinement() -> None:
    spec = spec_of(
        annotated(
            agent_inject_template_db="{{ .x }}",
            agent_inject_file_db="conf/db.env",
            agent_inject_perms_db="0640",
            agent_inject_command_db="pkill -HUP app",
            agent_template_left_delim_db="[[",
            agent_template_right_delim_db="]]",
            error_on_missing_key_db="true",
            secret_volume_path_db="/etc/db",
            agent_inject_signal_db="hup:nginx",
        )
    )
    template = only_template(spec)
    assert template.destination == "/etc/db/conf/db.env"
    assert template.perms == 0o640
    assert template.command == "pkill -HUP app"
    assert (template.left_delimiter, template.right_delimiter) == ("[[", "]]")
    assert template.error_on_missing_key is True
    assert (template.signal.signal, template.signal.process_name) == ("SIGHUP", "nginx")
    assert spec.share_process_namespace is True
    assert [(v.volume_name, v.mount_path) for v in spec.secret_volumes] == [
        ("vault-secrets", "/vault/secrets"),
        ("vault-secrets-custom-0", "/etc/db"),
    ]


def test_auth_config_annotations_become_login_parameters() -> None:
    spec = spec_of(
        annotated(
            role="",
            auth_config_role="from-config",
            auth_config_token_path="/var/run/custom/token",
            auth_config_remove_jwt_after_reading="false",
            auth_type="jwt",
            auth_path="auth/jwt-k8s/",
        )
    )
    auth = spec.agent_config.auth  # type: ignore[union-attr]
    assert (auth.role, auth.method, auth.mount_path) == ("from-config", "jwt", "auth/jwt-k8s")
    assert auth.token_file == "/var/run/custom/token"
    assert dict(auth.params) == {"remove_jwt_after_reading": "false"}


def test_empty_resource_annotations_omit_the_value() -> None:
    spec = spec_of(
        annotated(agent_limits_cpu="", agent_requests_mem="", agent_limits_ephemeral="1Gi")
    )
    assert dict(spec.limits) == {"memory": "96Mi", "ephemeral-storage": "1Gi"}
    assert dict(spec.requests) == {"cpu": "10m"}


def test_cluster_wide_default_annotations_apply_unless_the_pod_says_otherwise() -> None:
    settings = replace(
        SETTINGS,
        default_annotations=annotated(agent_limits_mem="256Mi", agent_native_sidecar="true"),
    )
    assert dict(spec_of(settings=settings).limits)["memory"] == "256Mi"
    assert spec_of(settings=settings).mode == "native-sidecar"
    own = spec_of(annotated(agent_limits_mem="200Mi"), settings=settings)
    assert dict(own.limits)["memory"] == "200Mi"


def test_default_annotations_refuse_deciding_and_unknown_keys() -> None:
    problems = default_annotation_problems(
        annotated(agent_inject="true", agent_limts_mem="1Gi", agent_inject_secret_x="kv/x")
    )
    assert any("agent-inject: cannot be a cluster-wide default" in p for p in problems)
    assert any("did you mean agent-limits-mem" in p for p in problems)
    assert any("agent-inject-secret-x: not a known annotation" in p for p in problems)
    assert default_annotation_problems(annotated(agent_run_as_user="1000")) == []


@pytest.mark.parametrize(
    ("defaults", "named"),
    [
        (annotated(agent_limits_cpu="lots"), "agent-limits-cpu: expected a Kubernetes quantity"),
        (annotated(agent_pre_populate="maybe"), "agent-pre-populate: expected true or false"),
        (annotated(agent_inject_default_template="xml"), "agent-inject-default-template"),
        (annotated(log_level="chatty"), "log-level: expected one of"),
        (annotated(agent_run_as_user="0"), "agent-run-as-user: 0 (root) is refused"),
        (annotated(agent_json_patch="{not json"), "agent-json-patch: expected an RFC 6902"),
        (annotated(secret_volume_path="relative/path"), "secret-volume-path"),
    ],
)
def test_a_default_annotation_that_would_refuse_every_pod_is_a_settings_error(
    defaults: dict[str, str], named: str
) -> None:
    errors = Reviewer(replace(SETTINGS, default_annotations=defaults)).settings_errors()
    assert len(errors) == 1, errors
    assert errors[0].startswith("vault.hashicorp.com/" + named)


@pytest.mark.parametrize(
    "defaults",
    [
        pytest.param(annotated(agent_copy_volume_mounts="web"), id="a container some pods have"),
        pytest.param(annotated(agent_run_as_same_user="true"), id="needs the pod's runAsUser"),
        pytest.param(
            annotated(agent_service_account_token_volume_name="token"), id="a pod's volume"
        ),
        pytest.param(annotated(agent_inject_containers="web"), id="a warning only"),
        pytest.param(
            annotated(
                role="web",
                agent_limits_mem="256Mi",
                agent_native_sidecar="true",
                agent_inject_token="true",
                auth_type="jwt",
                secret_volume_path="/data/secrets",
            ),
            id="good values",
        ),
    ],
)
def test_defaults_judged_only_pod_by_pod_or_fine_are_no_settings_error(
    defaults: dict[str, str],
) -> None:
    assert Reviewer(replace(SETTINGS, default_annotations=defaults)).settings_errors() == ()


@pytest.mark.parametrize(
    ("key", "group", "name"),
    [
        pytest.param(
            "vault.hashicorp.com/agent-inject-template-file-db",
            "vault.hashicorp.com/agent-inject-template-file-",
            "db",
            id="template-file before template",
        ),
        pytest.param(
            "vault.hashicorp.com/agent-inject-template-db",
            "vault.hashicorp.com/agent-inject-template-",
            "db",
            id="a plain template",
        ),
        pytest.param(
            "vault.hashicorp.com/agent-inject-status",
            "",
            "vault.hashicorp.com/agent-inject-status",
            id="a fixed key is not a group",
        ),
        pytest.param(
            "vault.hashicorp.com/secret-volume-path-db",
            "vault.hashicorp.com/secret-volume-path-",
            "db",
            id="a per-secret volume path",
        ),
    ],
)
def test_keys_are_classified_longest_group_first(key: str, group: str, name: str) -> None:
    assert classify(key) == (group, name)


def test_suggestions_only_come_when_a_key_is_close() -> None:
    assert suggest("vault.hashicorp.com/completely-unrelated-thing") is None
    assert "vault.hashicorp.com/agent-inject" in FIXED_KEYS
    assert "vault.hashicorp.com/" not in FIXED_KEYS


def _classify_by_hand(key: str) -> tuple[str, str] | None:
    """What classify means, written plainly: the first group (longest secret group first, then
    the parameter groups) that the key starts with and that a name follows."""
    if key in FIXED_KEYS:
        return ("", key)
    for group in SECRET_GROUPS + PARAMETER_GROUPS:
        if key.startswith(group) and len(key) > len(group):
            return (group, key[len(group) :])
    return None


# Pieces of group names, so that random keys hit exact groups, groups inside groups and names
# that look like groups (agent-inject-template-file-, agent-inject-secret-file-x, ...).
KEY_PIECES = sorted(
    {group.removeprefix(PREFIX) for group in SECRET_GROUPS + PARAMETER_GROUPS}
    | {"agent-", "inject-", "template-", "file-", "secret", "-", "x", "Db", "\n", "token"}
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(KEY_PIECES), max_size=4).map("".join),
    st.sampled_from([PREFIX, "", "example.com/"]),
)
def test_classify_takes_the_first_group_that_a_name_follows(tail: str, prefix: str) -> None:
    key = prefix + tail
    assert classify(key) == _classify_by_hand(key)


def test_classify_remembers_a_bounded_number_of_keys() -> None:
    """Answers are remembered per key (pods share their keys); made-up keys past the limit
    empty the memory rather than grow it, and every answer stays what the rule says."""
    keys = [f"{PREFIX}agent-inject-secret-s{index}" for index in range(CLASSIFIED_LIMIT + 50)]
    keys += [f"{PREFIX}made-up-{index}" for index in range(50)]
    for key in keys + keys[:100]:
        assert classify(key) == _classify_by_hand(key)
        assert len(webhook.annotations._CLASSIFIED) <= CLASSIFIED_LIMIT
    assert classify(keys[0]) == (SECRET_GROUP, "s0")


@pytest.mark.parametrize(
    "group", [pytest.param(group, id=group) for group in SECRET_GROUPS + PARAMETER_GROUPS]
)
def test_a_group_without_a_name_is_not_that_group(group: str) -> None:
    assert classify(group) == _classify_by_hand(group)
    assert classify(group) is None or classify(group) != (group, "")


SECTION_SETTINGS = [
    pytest.param(SETTINGS, id="defaults"),
    pytest.param(Settings(), id="no Vault address"),
    pytest.param(
        Settings(
            vault_address="http://vault:8200",
            proxy_address="proxy:3128",
            revoke_on_shutdown=False,
            default_annotations={
                PREFIX + "service": "https://default.vault:8200",
                PREFIX + "agent-revoke-grace": "7s",
                PREFIX + "agent-cache-enable": "true",
            },
        ),
        id="plain http, a bad proxy and default annotations",
    ),
]
SECTION_VALUES = [
    "true",
    "false",
    "",
    " ",
    "http://vault:8200",
    "https://vault:8200",
    "vault",
    "/vault/tls/ca.crt",
    "relative",
    "0.5",
    "1.5",
    "5s",
    "0",
    "-1",
    "70000",
    "caching",
    "auto-auth,proxying",
    "force",
]


@pytest.mark.parametrize("section_settings", SECTION_SETTINGS)
@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(sorted(FIXED_KEYS)), st.sampled_from(SECTION_VALUES), max_size=6
    )
)
def test_sections_worked_out_once_per_settings_read_like_every_key(
    section_settings: Settings, annotations: dict[str, str]
) -> None:
    # A pod without any of a section's keys gets the section worked out from the settings
    # when the webhook started: the same value and problems as reading every key, so the key
    # sets (VAULT_CONNECTION_KEYS, ...) miss nothing that changes a section.
    pod = make_pod(annotations)
    prepared = SpecParser(section_settings)
    quick, every_key = _Parser(pod, prepared, "shop"), _Parser(pod, prepared, "shop")
    assert quick.vault_connection() == every_key.read_vault_connection()
    assert quick.lifecycle() == every_key.read_lifecycle()
    quick.no_effect_annotations()
    every_key.validate_no_effect_keys()
    assert (quick.errors, quick.warnings) == (every_key.errors, every_key.warnings)

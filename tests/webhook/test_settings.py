"""Cluster-wide settings from the AGENT_INJECT_* environment."""

from __future__ import annotations

import pytest

from webhook.settings import Settings, SettingsError


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.bind == "0.0.0.0:8080"
    assert (settings.cpu_request, settings.mem_request) == ("10m", "32Mi")
    assert (settings.cpu_limit, settings.mem_limit) == ("250m", "96Mi")


def test_vault_k8s_variables_keep_their_meaning() -> None:
    settings = Settings.from_env(
        {
            "AGENT_INJECT_VAULT_ADDR": "https://vault:8200",
            "AGENT_INJECT_LISTEN": "127.0.0.1:9443",
            "AGENT_INJECT_VAULT_AUTH_TYPE": "JWT",
            "AGENT_INJECT_VAULT_AUTH_PATH": "auth/jwt",
            "AGENT_INJECT_RUN_AS_USER": "2000",
            "AGENT_INJECT_SET_SECURITY_CONTEXT": "false",
            "AGENT_INJECT_MEM_LIMIT": "",
            "AGENT_INJECT_TEMPLATE_STATIC_SECRET_RENDER_INTERVAL": "1m",
            "AGENT_INJECT_TLS_AUTO": "vault-sidecar-injector-cfg",
            "AGENT_INJECT_TLS_AUTO_HOSTS": "svc,svc.ns,svc.ns.svc",
            "AGENT_INJECT_DEFAULT_ANNOTATIONS": '{"agent-limits-mem": "256Mi"}',
        }
    )
    assert settings.bind == "127.0.0.1:9443"
    assert (settings.auth_type, settings.auth_path) == ("jwt", "auth/jwt")
    assert (settings.run_as_user, settings.set_security_context) == (2000, False)
    assert settings.mem_limit == ""
    assert settings.static_secret_render_interval_seconds == 60.0
    assert settings.tls_auto_hosts == ("svc", "svc.ns", "svc.ns.svc")
    assert dict(settings.default_annotations) == {"vault.hashicorp.com/agent-limits-mem": "256Mi"}


def test_every_bad_variable_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "AGENT_INJECT_VAULT_ADDR": "vault:8200",
                "AGENT_INJECT_RUN_AS_USER": "0",
                "AGENT_INJECT_REVOKE_ON_SHUTDOWN": "maybe",
                "AGENT_INJECT_CPU_LIMIT": "lots",
                "AGENT_INJECT_PROJECTED_TOKEN_EXPIRATION": "60",
                "AGENT_INJECT_DEFAULT_ANNOTATIONS": "[1]",
                "AGENT_INJECT_TLS_MIN_VERSION": "ssl3",
            }
        )
    assert {problem.split(":")[0] for problem in caught.value.problems} == {
        "AGENT_INJECT_RUN_AS_USER",
        "AGENT_INJECT_REVOKE_ON_SHUTDOWN",
        "AGENT_INJECT_CPU_LIMIT",
        "AGENT_INJECT_TLS_MIN_VERSION",
        "AGENT_INJECT_PROJECTED_TOKEN_EXPIRATION",
        "AGENT_INJECT_DEFAULT_ANNOTATIONS",
        "AGENT_INJECT_VAULT_ADDR",
    }

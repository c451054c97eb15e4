"""The kustomize overlays render, pass the Kubernetes schema and Pod Security "restricted", and say
what the issue asks: scope and failure policy of the webhook, least-privilege RBAC, a resilient
Deployment, and names that agree with the code (certs.kube, certs.authority)."""

from __future__ import annotations

import re
from typing import Any

from certs.authority import service_hosts
from certs.kube import DEFAULT_LEASE_NAME, DEFAULT_SECRET_NAME
from tests.manifests.conftest import MANIFESTS, env_of, find, rendered
from tests.support.kube_checks import pod_spec_of, restricted_violations, schema_problems

# ValidatingAdmissionPolicy is admissionregistration.k8s.io/v1 from Kubernetes 1.30 on.
SCHEMA_VERSION = "1.31.0"
# cert-manager's custom resources are not in the Kubernetes schema; they are checked by shape.
CUSTOM_KINDS = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}
NAMESPACE = "vault-sidecar-injector"
WEBHOOK_CONFIGURATION = "vault-sidecar-injector-cfg"
EXCLUDED_NAMESPACES = {NAMESPACE, "kube-system", "kube-public"}

Objects = list[dict[str, Any]]


def _webhook_container(objects: Objects) -> dict[str, Any]:
    deployment = find(objects, "Deployment", "vault-sidecar-injector")
    return next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "webhook"
    )


def test_every_object_passes_the_strict_schema(overlay: tuple[str, Objects]) -> None:
    _name, objects = overlay
    problems = [
        problem
        for obj in objects
        if (obj["apiVersion"], obj["kind"]) not in CUSTOM_KINDS
        for problem in schema_problems(obj, version=SCHEMA_VERSION)
    ]
    assert problems == []


def test_every_pod_template_meets_pod_security_restricted(overlay: tuple[str, Objects]) -> None:
    _name, objects = overlay
    templates = [(obj["metadata"]["name"], pod_spec_of(obj)) for obj in objects]
    checked = {name: restricted_violations(spec) for name, spec in templates if spec is not None}
    assert checked, "no pod template found"
    assert {name: problems for name, problems in checked.items() if problems} == {}


def test_the_schema_check_catches_a_misspelt_field() -> None:
    # Guards the two tests above: a typo must be a problem, not pass unseen.
    deployment = find(rendered("default"), "Deployment", "vault-sidecar-injector")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    assert schema_problems(broken, version=SCHEMA_VERSION) != []


def _selector_values(selector: dict[str, Any], key: str) -> set[str]:
    (expression,) = [e for e in selector["matchExpressions"] if e["key"] == key]
    assert expression["operator"] == "NotIn"
    return set(expression["values"])


def test_the_webhook_is_scoped_and_fails_open() -> None:
    objects = rendered("default")
    configuration = find(objects, "MutatingWebhookConfiguration", WEBHOOK_CONFIGURATION)
    service = find(objects, "Service", "vault-sidecar-injector")
    pod_labels = find(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert configuration["webhooks"], "at least one webhook entry"
    for entry in configuration["webhooks"]:
        assert entry["rules"] == [
            {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
             "resources": ["pods"], "scope": "Namespaced"}
        ]  # fmt: skip
        assert entry["admissionReviewVersions"] == ["v1"]
        assert entry["sideEffects"] == "None"
        assert entry["failurePolicy"] == "Ignore"
        assert entry["matchPolicy"] == "Equivalent"
        assert entry["reinvocationPolicy"] == "IfNeeded"
        assert entry["timeoutSeconds"] <= 10
        assert "caBundle" not in entry["clientConfig"], "filled by the leader or cert-manager"
        target = entry["clientConfig"]["service"]
        assert (target["name"], target["namespace"]) == (
            service["metadata"]["name"],
            service["metadata"]["namespace"],
        )
        assert target["path"] == "/mutate"
        assert target["port"] == service["spec"]["ports"][0]["port"]
        namespaces = _selector_values(entry["namespaceSelector"], "kubernetes.io/metadata.name")
        assert namespaces == EXCLUDED_NAMESPACES
        own = _selector_values(entry["objectSelector"], "app.kubernetes.io/name")
        assert pod_labels["app.kubernetes.io/name"] in own, "its own pods are never sent to it"


def test_the_admission_policy_fails_closed_over_the_same_scope() -> None:
    objects = rendered("default")
    policy = find(objects, "ValidatingAdmissionPolicy")
    binding = find(objects, "ValidatingAdmissionPolicyBinding")
    webhook = find(objects, "MutatingWebhookConfiguration")["webhooks"][0]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    constraints = spec["matchConstraints"]
    assert constraints["resourceRules"][0]["operations"] == ["CREATE"]
    assert constraints["resourceRules"][0]["resources"] == ["pods"]
    assert constraints["namespaceSelector"] == webhook["namespaceSelector"]
    assert constraints["objectSelector"] == webhook["objectSelector"]


def test_rbac_grants_only_what_certs_kube_does() -> None:
    objects = rendered("default")
    role = find(objects, "Role", "vault-sidecar-injector-tls")
    assert role["metadata"]["namespace"] == NAMESPACE
    granted = {
        (rule["apiGroups"][0], resource, verb, name)
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in rule.get("resourceNames", ["*"])
    }
    assert granted == {
        ("coordination.k8s.io", "leases", "create", "*"),
        ("coordination.k8s.io", "leases", "get", DEFAULT_LEASE_NAME),
        ("coordination.k8s.io", "leases", "update", DEFAULT_LEASE_NAME),
        ("", "secrets", "create", "*"),
        ("", "secrets", "get", DEFAULT_SECRET_NAME),
        ("", "secrets", "update", DEFAULT_SECRET_NAME),
    }
    cluster_role = find(objects, "ClusterRole")
    assert cluster_role["rules"] == [
        {"apiGroups": ["admissionregistration.k8s.io"],
         "resources": ["mutatingwebhookconfigurations"],
         "resourceNames": [WEBHOOK_CONFIGURATION], "verbs": ["get", "patch"]}
    ]  # fmt: skip
    for kind, role_kind in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        binding = find(objects, kind)
        assert binding["roleRef"]["kind"] == role_kind
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "vault-sidecar-injector", "namespace": NAMESPACE}
        ]


def test_the_deployment_survives_node_loss_and_rollouts() -> None:
    objects = rendered("default")
    deployment = find(objects, "Deployment", "vault-sidecar-injector")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hostname_spread = [
        c for c in pod["topologySpreadConstraints"] if c["topologyKey"] == "kubernetes.io/hostname"
    ]
    assert hostname_spread[0]["whenUnsatisfiable"] == "DoNotSchedule"
    budget = find(objects, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    service = find(objects, "Service")
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    container = _webhook_container(objects)
    assert container["args"] == ["serve"]
    assert container["ports"] == [{"name": "https", "containerPort": 8080, "protocol": "TCP"}]
    assert service["spec"]["ports"][0]["targetPort"] == "https"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        100,
        1000,
    )


def test_the_environment_agrees_with_the_objects() -> None:
    objects = rendered("default")
    environment = env_of(_webhook_container(objects))
    assert environment["AGENT_INJECT_VAULT_ADDR"].startswith("https://")
    assert environment["AGENT_INJECT_LISTEN"] == ":8080"
    assert environment["AGENT_INJECT_TLS_AUTO"] == WEBHOOK_CONFIGURATION
    service = find(objects, "Service")
    assert environment["AGENT_INJECT_TLS_AUTO_HOSTS"].split(",") == service_hosts(
        service["metadata"]["name"], service["metadata"]["namespace"]
    )
    mounts = {m["name"]: m["mountPath"] for m in _webhook_container(objects)["volumeMounts"]}
    assert environment["AGENT_INJECT_TLS_CERT_FILE"] == f"{mounts['tls']}/tls.crt"
    assert environment["AGENT_INJECT_TLS_KEY_FILE"] == f"{mounts['tls']}/tls.key"
    volumes = {
        v["name"]: v for v in find(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["tls"]["emptyDir"]["medium"] == "Memory", "the key stays off the node's disk"
    for variable in ("NAMESPACE", "POD_NAME"):
        assert variable in environment


def test_native_sidecar_overlay_turns_them_on() -> None:
    assert (
        env_of(_webhook_container(rendered("native-sidecar")))["AGENT_INJECT_NATIVE_SIDECAR"]
        == "true"
    )
    assert "AGENT_INJECT_NATIVE_SIDECAR" not in env_of(_webhook_container(rendered("default")))


def test_cert_manager_overlay_needs_no_api_access() -> None:
    objects = rendered("cert-manager")
    kinds = {obj["kind"] for obj in objects}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    environment = env_of(_webhook_container(objects))
    assert "AGENT_INJECT_TLS_AUTO" not in environment
    serving = find(objects, "Certificate", "vault-sidecar-injector-serving")
    tls_volume = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert set(tls_volume) == {"name", "secret"}
    assert tls_volume["secret"]["secretName"] == serving["spec"]["secretName"]
    service = find(objects, "Service")
    assert serving["spec"]["dnsNames"] == service_hosts(
        service["metadata"]["name"], service["metadata"]["namespace"]
    )
    issuer = find(objects, "Issuer", serving["spec"]["issuerRef"]["name"])
    ca_certificate = find(objects, "Certificate", "vault-sidecar-injector-ca")
    assert issuer["spec"]["ca"]["secretName"] == ca_certificate["spec"]["secretName"]
    assert ca_certificate["spec"]["isCA"] is True
    configuration = find(objects, "MutatingWebhookConfiguration")
    inject_from = configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert inject_from == f"{serving['metadata']['namespace']}/{serving['metadata']['name']}"


def test_the_example_asks_for_a_database_credential_and_a_kv_secret() -> None:
    objects = rendered("example")
    app = find(objects, "Deployment", "orders")
    annotations = app["spec"]["template"]["metadata"]["annotations"]
    prefix = "vault.hashicorp.com/"
    assert annotations[prefix + "agent-inject"] == "true"
    secrets = {
        key.removeprefix(prefix + "agent-inject-secret-"): value
        for key, value in annotations.items()
        if key.startswith(prefix + "agent-inject-secret-")
    }
    assert secrets == {"db": "database/creds/orders", "config.env": "secret/data/orders/config"}
    for name, path in secrets.items():
        assert f'secret "{path}"' in annotations[prefix + f"agent-inject-template-{name}"]
    # The Vault commands agree with the app: role, ServiceAccount, namespace, audience, paths.
    script = (MANIFESTS / "overlays/example/vault-setup.sh").read_text()
    pod = app["spec"]["template"]["spec"]
    token_volume = next(
        v
        for v in pod["volumes"]
        if v["name"] == annotations[prefix + "agent-service-account-token-volume-name"]
    )
    audience = token_volume["projected"]["sources"][0]["serviceAccountToken"]["audience"]
    role = annotations[prefix + "role"]
    assert f"auth/kubernetes/role/{role}" in script
    assert f"bound_service_account_names={pod['serviceAccountName']}" in script
    assert f"bound_service_account_namespaces={app['metadata']['namespace']}" in script
    assert f"audience={audience}" in script
    for path in secrets.values():
        assert re.search(rf'path "{re.escape(path)}" {{\s+capabilities = \["read"\]', script)
    assert "database/roles/orders" in script

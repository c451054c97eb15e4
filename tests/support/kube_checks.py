"""Checks every test area applies to the pods and objects it produces.

- ``schema_problems``: the object against the Kubernetes OpenAPI schema (kubernetes-validate,
  strict: unknown fields are errors).
- ``restricted_violations``: the Pod Security Standards "restricted" profile (which includes
  "baseline"), as the pod-security admission controller evaluates a pod spec. Works on a Pod or any
  pod template (``spec.template.spec``, ``spec.jobTemplate.spec.template.spec``).

Both return a list of human-readable problems; an empty list means the object passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes_validate

KUBERNETES_VERSION = "1.31.0"

_RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
_BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}


def schema_problems(obj: dict[str, Any], *, version: str = KUBERNETES_VERSION) -> list[str]:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = "/".join(str(part) for part in error.path)
        return [f"{obj.get('kind')} {path}: {error.message}"]
    return []


def pod_spec_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a Pod or a workload's pod template, or None for other kinds."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return dict(spec)
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        return dict(template["spec"])
    return None


def _containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            yield f"{field}[{container.get('name')}]", container


# SELinux types the baseline profile allows (container_engine_t since Kubernetes 1.31).
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def _context_violations(where: str, context: dict[str, Any]) -> list[str]:
    """Baseline rules that apply alike to the pod's and to each container's securityContext."""
    problems = []
    if (context.get("windowsOptions") or {}).get("hostProcess"):
        problems.append(f"{where}: windowsOptions.hostProcess must not be true")
    app_armor = (context.get("appArmorProfile") or {}).get("type")
    if app_armor not in (None, "RuntimeDefault", "Localhost"):
        problems.append(f"{where}: appArmorProfile.type {app_armor} is not allowed")
    selinux = context.get("seLinuxOptions") or {}
    if (selinux.get("type") or "") not in _SELINUX_TYPES:
        problems.append(f"{where}: seLinuxOptions.type {selinux['type']} is not allowed")
    for key in ("user", "role"):
        if selinux.get(key):
            problems.append(f"{where}: seLinuxOptions.{key} must not be set")
    return problems


def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    """Every way ``pod_spec`` breaks Pod Security "restricted" (and so "baseline")."""
    problems: list[str] = []
    pod_context = pod_spec.get("securityContext") or {}
    problems.extend(_context_violations("spec.securityContext", pod_context))
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            problems.append(f"spec.{field} must not be true")
    for volume in pod_spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume.get('name')}: type {sorted(kinds)} is not allowed")
    for sysctl in pod_context.get("sysctls") or []:
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            problems.append(f"sysctl {sysctl.get('name')} is not allowed")
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        problems.append(f"spec.securityContext.seccompProfile.type {pod_seccomp} is not allowed")
    if pod_context.get("runAsUser") == 0:
        problems.append("spec.securityContext.runAsUser must not be 0")
    for where, container in _containers(pod_spec):
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            problems.append(f"{where}: privileged must not be true")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation must be false")
        run_as_non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if run_as_non_root is not True:
            problems.append(f"{where}: runAsNonRoot must be true (container or pod level)")
        if context.get("runAsUser") == 0:
            problems.append(f"{where}: runAsUser must not be 0")
        seccomp = (context.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile.type must be RuntimeDefault or Localhost")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{where}: capabilities.drop must include ALL")
        added = set(capabilities.get("add") or [])
        if not added <= {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: capabilities.add may only hold NET_BIND_SERVICE")
        if not added <= _BASELINE_CAPABILITIES:
            problems.append(f"{where}: capabilities.add beyond the baseline set")
        if context.get("procMount") not in (None, "Default"):
            problems.append(f"{where}: procMount must be Default")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{where}: hostPort must not be set")
        problems.extend(_context_violations(where, context))
    return problems

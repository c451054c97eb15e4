"""What the API server adds to a pod before mutating webhooks see it, and the cluster's root CA.

In a cluster the ServiceAccount admission plugin runs before mutating admission webhooks. Unless
the pod (or its ServiceAccount) disables automounting, it adds a projected volume
``kube-api-access-<5 random characters>`` and mounts it read-only at
``/var/run/secrets/kubernetes.io/serviceaccount`` in every init container and container that does
not already mount something there (a port of ``plugin/pkg/admission/serviceaccount``). Tests apply
``apply_service_account_admission`` to a bare pod so the webhook receives what it would in a
cluster.
"""

from __future__ import annotations

import copy
import datetime
import functools
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_NAME_PREFIX = "kube-api-access-"
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
TOKEN_EXPIRATION_SECONDS = 3607  # what the plugin asks for: one hour plus a marker of 7 seconds
# names.SimpleNameGenerator's alphabet: no vowels (no words), no confusable characters.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SUFFIX_LENGTH = 5


def _random_suffix() -> str:
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(_SUFFIX_LENGTH))


def kube_api_access_volume(name: str) -> dict[str, Any]:
    """The projected volume the plugin adds: token, cluster CA and namespace."""
    return {
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {
                    "serviceAccountToken": {
                        "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                        "path": "token",
                    }
                },
                {
                    "configMap": {
                        "name": ROOT_CA_CONFIG_MAP,
                        "items": [{"key": ROOT_CA_KEY, "path": ROOT_CA_KEY}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def apply_service_account_admission(
    pod: Mapping[str, Any],
    *,
    service_account_automount: bool = True,
    volume_suffix: str | None = None,
) -> dict[str, Any]:
    """A copy of ``pod`` as the ServiceAccount admission plugin leaves it.

    ``service_account_automount`` is the ServiceAccount's own ``automountServiceAccountToken``;
    the pod's field, when set, wins over it. ``volume_suffix`` fixes the random part of the volume
    name (for golden files).
    """
    admitted = copy.deepcopy(dict(pod))
    spec: dict[str, Any] = admitted.setdefault("spec", {})
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = "default"
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = service_account_automount
    if not automount:
        return admitted
    volumes: list[dict[str, Any]] = spec.setdefault("volumes", [])
    existing = next(
        (volume["name"] for volume in volumes if volume["name"].startswith(VOLUME_NAME_PREFIX)),
        None,
    )
    volume_name = existing or VOLUME_NAME_PREFIX + (volume_suffix or _random_suffix())
    needs_volume = False
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            mounts: list[dict[str, Any]] = container.setdefault("volumeMounts", [])
            if any(mount.get("mountPath") == TOKEN_MOUNT_PATH for mount in mounts):
                continue
            mounts.append({"name": volume_name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH})
            needs_volume = True
    if needs_volume and existing is None:
        volumes.append(kube_api_access_volume(volume_name))
    return admitted


@functools.cache
def cluster_root_ca_pem() -> str:
    """A self-signed CA certificate standing in for the cluster's (kube-root-ca.crt's ca.crt)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emulated-cluster-ca")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()

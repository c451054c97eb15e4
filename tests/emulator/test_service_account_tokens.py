"""ServiceAccount tokens where the spec mounts them: the default one, projected ones, refreshed."""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

import jwt

from tests.emulator.conftest import PodFactory, needs_root
from tests.emulator.manifests import SLEEPER, container, mount, pod
from tests.support.emulator import (
    TOKEN_MOUNT_PATH,
    EmulatorOptions,
    apply_service_account_admission,
)
from tests.support.fake_kube import DEFAULT_AUDIENCE, ISSUER, FakeKubeApiServer

pytestmark = needs_root

READ_TOKEN_DIR = f"""
import json, os
directory = {TOKEN_MOUNT_PATH!r}
if not os.path.isdir(directory):
    print(json.dumps(None))
else:
    print(json.dumps({{name: open(os.path.join(directory, name)).read()
                      for name in sorted(os.listdir(directory)) if not name.startswith('..')}}))
"""


def _claims(
    token: str, issuer: FakeKubeApiServer, audience: str, *, expired_is_fine: bool = False
) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(
        token,
        issuer.public_key_pem,
        algorithms=["RS256"],
        audience=audience,
        issuer=ISSUER,
        options={"verify_exp": not expired_is_fine},
    )
    return decoded


def test_the_default_service_account_token_is_mounted_after_admission(
    make_pod: PodFactory, token_issuer: FakeKubeApiServer
) -> None:
    manifest = apply_service_account_admission(
        pod(
            "default-token",
            [container("app", SLEEPER)],
            serviceAccountName="orders",
            securityContext={"runAsUser": 1000},
        )
    )
    with make_pod(manifest) as emulated:
        emulated.wait_until_running(20)
        files = json.loads(emulated.exec("app", ["python", "-c", READ_TOKEN_DIR]).stdout)
    assert sorted(files) == ["ca.crt", "namespace", "token"]
    assert files["namespace"] == "shop"
    assert files["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    claims = _claims(files["token"], token_issuer, DEFAULT_AUDIENCE)
    assert claims["sub"] == "system:serviceaccount:shop:orders"
    assert claims["exp"] - claims["iat"] == 3607
    assert claims["kubernetes.io"]["pod"] == {
        "name": "default-token",
        "uid": "uid-of-default-token",
    }


def test_without_automount_there_is_no_token_file(make_pod: PodFactory) -> None:
    manifest = apply_service_account_admission(
        pod("no-token", [container("app", SLEEPER)], automountServiceAccountToken=False)
    )
    with make_pod(manifest) as emulated:
        emulated.wait_until_running(20)
        files = json.loads(emulated.exec("app", ["python", "-c", READ_TOKEN_DIR]).stdout)
    assert files is None


def _projected_token_pod(name: str, **spec: Any) -> dict[str, Any]:
    return pod(
        name,
        [container("app", SLEEPER, mounts=[mount("vault-token", "/var/run/secrets/vault")])],
        volumes=[
            {
                "name": "vault-token",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": "vault",
                                "expirationSeconds": 900,
                                "path": "token",
                            }
                        }
                    ]
                },
            }
        ],
        **spec,
    )


def test_a_projected_token_has_the_audience_and_lifetime_asked_for(
    make_pod: PodFactory, token_issuer: FakeKubeApiServer
) -> None:
    manifest = _projected_token_pod("projected", securityContext={"fsGroup": 2000})
    read = "import os; print(open('/var/run/secrets/vault/token').read())"
    with make_pod(manifest) as emulated:
        emulated.wait_until_running(20)
        token = emulated.exec("app", ["python", "-c", read]).stdout.strip()
        token_file = emulated.volume_path("vault-token") / "token"
        owner_group = os.stat(token_file).st_gid
    claims = _claims(token, token_issuer, "vault")
    assert claims["aud"] == ["vault"]
    assert claims["exp"] - claims["iat"] == 900
    assert owner_group == 2000


def test_a_projected_token_is_replaced_at_80_percent_of_its_life(
    make_pod: PodFactory, token_issuer: FakeKubeApiServer
) -> None:
    # Long enough that a busy machine's scheduling delays stay well inside the bounds below.
    lifetime = datetime.timedelta(seconds=4)
    options = EmulatorOptions(max_token_lifetime=lifetime)
    read = "import os; print(open('/var/run/secrets/vault/token').read())"
    with make_pod(_projected_token_pod("refresh"), options=options) as emulated:
        emulated.wait_until_running(20)
        first = emulated.exec("app", ["python", "-c", read]).stdout.strip()
        emulated.wait_for(
            lambda: any(event.reason == "TokenRefreshed" for event in emulated.events),
            8,
            "a token refresh",
        )
        refreshed_at = next(e.at for e in emulated.events if e.reason == "TokenRefreshed")
        second = emulated.exec("app", ["python", "-c", read]).stdout.strip()
    issued_at = next(e.at for e in emulated.events if e.reason == "Scheduled")
    assert first != second
    assert 3.1 <= refreshed_at - issued_at < 4.0  # 80% of 4 seconds, before expiry
    first_claims = _claims(first, token_issuer, "vault", expired_is_fine=True)
    second_claims = _claims(second, token_issuer, "vault", expired_is_fine=True)
    assert second_claims["iat"] >= first_claims["iat"] + 1
    assert second_claims["exp"] - second_claims["iat"] == 4

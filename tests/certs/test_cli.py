"""``python -m certs``: files, modes, the printed caBundle, and clear refusals of bad input."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from certs.authority import dns_names, issued_by, load_certificates
from certs.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_generate_writes_a_verified_set_and_prints_the_ca_bundle(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    finished = subprocess.run(
        [sys.executable, "-m", "certs", "generate", "--service", "injector",
         "--namespace", "vsi", "--out", str(out), "--host", "127.0.0.1"],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    assert stat.S_IMODE(os.stat(out / "tls.key").st_mode) == 0o600
    ca_pem = (out / "ca.crt").read_bytes()
    assert base64.b64decode(finished.stdout.strip()) == ca_pem
    serving = load_certificates((out / "tls.crt").read_bytes())[0]
    assert issued_by(serving, load_certificates(ca_pem)[0])
    assert dns_names(serving) == [
        "injector", "injector.vsi", "injector.vsi.svc", "injector.vsi.svc.cluster.local",
        "127.0.0.1",
    ]  # fmt: skip
    assert "PRIVATE KEY" not in finished.stdout + finished.stderr
    assert main(["check", "--cert", str(out / "tls.crt"), "--key", str(out / "tls.key"),
                 "--ca", str(out / "ca.crt")]) == 0  # fmt: skip


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(["--service", "", "--namespace", "vsi"], "--service must not be empty",
                     id="an empty service name is refused"),
        pytest.param(["--service", "Injector", "--namespace", "vsi"], "not a valid Service name",
                     id="an upper case service name is refused"),
        pytest.param(["--service", "injector", "--namespace", "bad_ns"],
                     "--namespace 'bad_ns' is not a valid namespace",
                     id="a namespace with an underscore is refused"),
        pytest.param(["--service", "injector", "--namespace", "n" * 64], "not a valid namespace",
                     id="a namespace longer than 63 characters is refused"),
        pytest.param(["--service", "injector", "--namespace", "vsi", "--days", "0"],
                     "must be positive", id="a zero lifetime is refused"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["generate", *arguments, "--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unwritable_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Running as root makes permission bits meaningless; a path under a file is unwritable for all.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exited:
        main(["generate", "--service", "s", "--namespace", "n", "--out", str(blocker / "tls")])
    assert exited.value.code == 2
    assert f"--out '{blocker / 'tls'}' is not a writable directory" in capsys.readouterr().err


def test_existing_files_are_kept_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["generate", "--service", "s", "--namespace", "n", "--out", str(tmp_path)]
    assert main(command) == 0
    first = (tmp_path / "tls.key").read_bytes()
    with pytest.raises(SystemExit):
        main(command)
    assert "use --force" in capsys.readouterr().err
    assert (tmp_path / "tls.key").read_bytes() == first
    assert main([*command, "--force"]) == 0
    assert (tmp_path / "tls.key").read_bytes() != first


def test_check_reports_a_key_that_does_not_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("one", "two"):
        assert (
            main(["generate", "--service", "s", "--namespace", "n", "--out", str(tmp_path / name)])
            == 0
        )
    capsys.readouterr()
    one, two = tmp_path / "one", tmp_path / "two"
    code = main(["check", "--cert", str(one / "tls.crt"), "--key", str(two / "tls.key"),
                 "--ca", str(two / "ca.crt")])  # fmt: skip
    errors = capsys.readouterr().err
    assert code == 1
    assert f"{tmp_path / 'two/tls.key'} is not the key of {tmp_path / 'one/tls.crt'}" in errors
    assert "is not signed by a CA in" in errors

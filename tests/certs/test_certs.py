"""``dolbom certs``: the local CA and its certificates, run as an operator would."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from dolbom.certs import CertError, init_ca, issue_device, issue_service, load_ca
from dolbom.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["certs", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_a_ca_with_a_private_key(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`certs init` writes ca.key 0600 and a CA certificate that may sign, and nothing else."""
    rc, out, _ = run(capsys, "init", "--dir", str(tmp_path / "ca"))
    assert rc == 0 and "CA written" in out
    ca = cert(tmp_path / "ca" / "ca.crt")
    assert mode(tmp_path / "ca" / "ca.key") == 0o600
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_init_keeps_an_existing_ca_unless_forced(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Re-running init keeps the CA (same key, same certificate); --force replaces it."""
    d = tmp_path / "ca"
    run(capsys, "init", "--dir", str(d))
    first = (d / "ca.crt").read_bytes(), (d / "ca.key").read_bytes()
    rc, out, _ = run(capsys, "init", "--dir", str(d))
    assert rc == 0 and "kept" in out
    assert ((d / "ca.crt").read_bytes(), (d / "ca.key").read_bytes()) == first
    rc, out, _ = run(capsys, "init", "--dir", str(d), "--force")
    assert rc == 0 and "written" in out and (d / "ca.key").read_bytes() != first[1]
    assert mode(d / "ca.key") == 0o600


def test_service_certificate_names_its_hosts_and_chains_to_the_ca(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`certs service` makes a server certificate with the given SANs that Python's TLS
    verification accepts against the CA."""
    d = tmp_path / "ca"
    run(capsys, "init", "--dir", str(d))
    rc, _, _ = run(capsys, "service", "mosquitto", "--dir", str(d), "--host", "127.0.0.1",
                   "--host", "broker.example.org")
    assert rc == 0
    crt = cert(d / "services" / "mosquitto.crt")
    san = crt.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["broker.example.org"]
    eku = crt.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert mode(d / "services" / "mosquitto.key") == 0o600
    crt.verify_directly_issued_by(cert(d / "ca.crt"))
    # A TLS server context loads the pair: the key matches the certificate.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(d / "services" / "mosquitto.crt", d / "services" / "mosquitto.key")


def test_service_defaults_to_loopback_names_and_is_idempotent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --host the certificate names 127.0.0.1 and localhost; re-running keeps it,
    other hosts or a new CA issue it anew."""
    d = tmp_path / "ca"
    run(capsys, "init", "--dir", str(d))
    run(capsys, "service", "mosquitto", "--dir", str(d))
    path = d / "services" / "mosquitto.crt"
    san = cert(path).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(map(str, san.get_values_for_type(x509.IPAddress))) == {"127.0.0.1"}
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    before = path.read_bytes()
    rc, out, _ = run(capsys, "service", "mosquitto", "--dir", str(d))
    assert rc == 0 and "kept" in out and path.read_bytes() == before
    run(capsys, "service", "mosquitto", "--dir", str(d), "--host", "10.0.0.5")
    assert path.read_bytes() != before
    again = path.read_bytes()
    run(capsys, "init", "--dir", str(d), "--force")
    assert issue_service(d, "mosquitto", ["10.0.0.5"]).created
    assert path.read_bytes() != again


def test_device_certificate_is_a_client_certificate(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`certs device ID` makes a client certificate whose common name is the device id."""
    d = tmp_path / "ca"
    run(capsys, "init", "--dir", str(d))
    rc, _, _ = run(capsys, "device", "esp32-a1b2c3", "--dir", str(d))
    assert rc == 0
    crt = cert(d / "devices" / "esp32-a1b2c3.crt")
    assert crt.subject.rfc4514_string() == "CN=esp32-a1b2c3"
    eku = crt.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert mode(d / "devices" / "esp32-a1b2c3.key") == 0o600
    assert not issue_device(d, "esp32-a1b2c3").created


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_service_key_can_belong_to_the_server_user(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """--owner mosquitto gives the key to the broker's user (0600): only it can read it."""
    d = tmp_path / "ca"
    run(capsys, "init", "--dir", str(d))
    rc, _, err = run(capsys, "service", "mosquitto", "--dir", str(d), "--owner", "mosquitto")
    assert rc == 0, err
    st = (d / "services" / "mosquitto.key").stat()
    assert pwd.getpwuid(st.st_uid).pw_name == "mosquitto" and stat.S_IMODE(st.st_mode) == 0o600


@pytest.mark.parametrize(("with_ca", "args", "message"), [
    (False, ("service", "mosquitto"), "no CA in"),
    (False, ("device", "d1"), "run `dolbom certs init"),
    (True, ("service", "Bad Name"), "service name 'Bad Name'"),
    (True, ("service", "m", "--host", "not a host"), "neither an IP address nor a DNS name"),
    (True, ("service", "m", "--owner", "no-such-user-x"), "no such user"),
    (True, ("device", "../escape"), "device name '../escape'"),
])
def test_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   with_ca: bool, args: tuple[str, ...], message: str) -> None:
    """Every failure is one line on stderr and exit code 1, never a traceback."""
    d = tmp_path / "ca"
    if with_ca:
        run(capsys, "init", "--dir", str(d))
    rc, _, err = run(capsys, *args, "--dir", str(d))
    assert rc == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_a_broken_ca_is_reported_not_replaced(tmp_path: Path) -> None:
    """A CA whose key does not match its certificate is an error, not silently remade."""
    a, b = tmp_path / "a", tmp_path / "b"
    init_ca(a)
    init_ca(b)
    (a / "ca.key").write_bytes((b / "ca.key").read_bytes())
    with pytest.raises(CertError, match="is not the key of"):
        init_ca(a)
    with pytest.raises(CertError, match="is not the key of"):
        load_ca(a)


def test_expired_certificates_can_be_made_for_tests(tmp_path: Path) -> None:
    """not_before in the past makes a certificate that has already expired."""
    init_ca(tmp_path)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    issued = issue_service(tmp_path, "old", ["127.0.0.1"], not_before=past, days=1)
    assert cert(issued.cert).not_valid_after_utc < dt.datetime.now(dt.UTC)


def test_help_describes_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`dolbom certs --help` lists init, service and device."""
    with pytest.raises(SystemExit) as e:
        main(["certs", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("init", "service", "device"))

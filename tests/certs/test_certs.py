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
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from dolbom.certs import (
    CertError,
    init_ca,
    issue_device,
    issue_service,
    load_ca,
    revoke_device,
    revoked_serials,
    write_crl,
)
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
    """`dolbom certs --help` lists init, service, device, revoke and crl."""
    with pytest.raises(SystemExit) as e:
        main(["certs", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("init", "service", "device", "revoke", "crl"))


def crl_of(d: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl((d / "ca.crl").read_bytes())


def test_revoke_lists_the_device_and_a_new_certificate_replaces_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`certs revoke ID` puts the device certificate's serial into ca.crl (0644, signed by
    the CA, numbered); revoking again changes nothing revoked; the next `certs device ID`
    issues a new certificate instead of keeping the revoked one."""
    d = tmp_path / "ca"
    init_ca(d)
    lost = cert(issue_device(d, "esp32-lost").cert)
    good = cert(issue_device(d, "esp32-good").cert)
    rc, out, _ = run(capsys, "revoke", "esp32-lost", "--dir", str(d))
    assert rc == 0 and "revoked" in out and "ca.crl" in out
    crl = crl_of(d)
    ca, _ = load_ca(d)
    pub = ca.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and crl.is_signature_valid(pub)
    assert crl.issuer == ca.subject and mode(d / "ca.crl") == 0o644
    assert [r.serial_number for r in crl] == [lost.serial_number]
    assert crl.get_revoked_certificate_by_serial_number(good.serial_number) is None
    assert run(capsys, "revoke", "esp32-lost", "--dir", str(d))[0] == 0
    again = crl_of(d)
    assert [r.serial_number for r in again] == [lost.serial_number]
    assert again.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert revoked_serials(d) == {lost.serial_number}
    renewed = issue_device(d, "esp32-lost")
    assert renewed.created and cert(renewed.cert).serial_number != lost.serial_number
    assert not issue_device(d, "esp32-good").created  # not revoked: kept


def test_crl_re_signs_the_list_with_a_new_validity(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`certs crl` writes an empty list when nothing is revoked, and re-signs the revoked
    serials with a new validity (a broker refuses every client past next_update)."""
    d = tmp_path / "ca"
    init_ca(d)
    rc, out, _ = run(capsys, "crl", "--dir", str(d), "--days", "10")
    assert rc == 0 and "0 revoked" in out and list(crl_of(d)) == []
    first = crl_of(d).next_update_utc
    assert first is not None
    assert dt.timedelta(days=9) < first - dt.datetime.now(dt.UTC) <= dt.timedelta(days=10)
    lost = cert(issue_device(d, "esp32-lost").cert)
    write_crl(d, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=5), days=6)
    assert run(capsys, "revoke", "esp32-lost", "--dir", str(d))[0] == 0
    assert run(capsys, "crl", "--dir", str(d))[0] == 0
    crl = crl_of(d)
    assert [r.serial_number for r in crl] == [lost.serial_number]
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=300)


def test_revocation_errors_are_one_line(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "ca"
    rc, _, err = run(capsys, "crl", "--dir", str(d))
    assert rc == 1 and "no CA" in err and len(err.strip().splitlines()) == 1
    init_ca(d)
    rc, _, err = run(capsys, "revoke", "esp32-none", "--dir", str(d))
    assert rc == 1 and "no certificate for device esp32-none" in err
    rc, _, err = run(capsys, "crl", "--dir", str(d), "--days", "0")
    assert rc == 1 and "--days 0" in err
    (d / "ca.crl").write_text("not a crl")
    rc, _, err = run(capsys, "crl", "--dir", str(d))
    assert rc == 1 and "cannot read the revocation list" in err


def test_a_new_ca_replaces_the_old_cas_revocation_list(tmp_path: Path) -> None:
    """`init --force` makes a new CA: the old CA's list (signed by a key that is gone, which
    would make a broker refuse everyone) is replaced by the new CA's empty one."""
    d = tmp_path / "ca"
    init_ca(d)
    issue_device(d, "esp32-lost")
    revoke_device(d, "esp32-lost")
    init_ca(d, force=True)
    ca, _ = load_ca(d)
    pub = ca.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and crl_of(d).is_signature_valid(pub)
    assert list(crl_of(d)) == [] and revoked_serials(d) == set()

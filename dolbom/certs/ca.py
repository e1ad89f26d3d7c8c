"""Make the CA and the certificates signed by it, with ``cryptography``.

Layout of the CA directory::

    ca.crt                 the CA certificate (public: devices and services trust it)
    ca.key                 the CA's private key (0600; never leaves this directory)
    services/NAME.crt|key  server certificates (the broker's), key 0600
    devices/ID.crt|key     optional client certificates, key 0600
    ca.crl                 the revocation list (``revoke_device``, ``write_crl``): what a
                           broker that requires client certificates refuses

Keys are ECDSA P-256: small and fast on microcontrollers (mbedTLS on ESP32 / Pico W)
and accepted by Mosquitto. Re-running is safe: an existing CA is kept unless
``force``, and a certificate that still fits (same CA, same names, not near its
end) is kept too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import pwd
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dolbom.certs.errors import CertError
from dolbom.files import write_atomic

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
CA_CRL = "ca.crl"
# A CRL past its next update makes OpenSSL (Mosquitto) refuse every client certificate,
# so it is valid for long and re-signed by every revoke and by ``dolbom certs crl``.
CRL_DAYS = 365
CA_DAYS = 3650
LEAF_DAYS = 825  # the longest leaf lifetime common TLS clients accept
RENEW_BEFORE = dt.timedelta(days=30)
# Clocks of freshly booted devices can lag; a certificate valid from an hour ago works.
BACKDATE = dt.timedelta(hours=1)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path
    created: bool  # False: an existing, still fitting file was kept


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise CertError(f"{kind} name {name!r}: use 1-63 of a-z 0-9 _ . - (starting a-z 0-9)")


def _user(owner: str | None) -> tuple[int, int] | None:
    if owner is None:
        return None
    try:
        pw = pwd.getpwnam(owner)
    except KeyError:
        raise CertError(f"no such user {owner!r} (--owner)") from None
    return pw.pw_uid, pw.pw_gid


def _write(path: Path, data: bytes, mode: int, owner: str | None = None) -> None:
    """Write atomically (a reader never sees half a key) with ``mode`` whatever the umask;
    an unknown ``owner`` is a CertError."""
    _user(owner)
    write_atomic(path, data, owner=owner, mode=mode)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _read_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as e:
        raise CertError(f"cannot read certificate {path}: {e}") from None


def load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA of ``directory``; CertError (one line) if it is missing or unreadable."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if not cert_path.is_file() or not key_path.is_file():
        raise CertError(f"no CA in {directory}: run `dolbom certs init --dir {directory}` first")
    cert = _read_cert(cert_path)
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise CertError(f"cannot read the CA key {key_path}: {e}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or \
            key.public_key() != cert.public_key():
        raise CertError(f"{key_path} is not the key of {cert_path}")
    return cert, key


def init_ca(directory: Path, *, name: str = "Dolbom local CA", days: int = CA_DAYS,
            force: bool = False, now: dt.datetime | None = None) -> Issued:
    """Make the CA in ``directory`` (kept if it exists, unless ``force``)."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if not force and (cert_path.exists() or key_path.exists()):
        load_ca(directory)  # an existing CA must be whole and readable
        return Issued(cert_path, key_path, created=False)
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dolbom")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    # The key first: a CA certificate without its key would look whole to load_ca's caller.
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    if (directory / CA_CRL).exists():
        # The old CA's list: signed by a key that is gone, it would make a broker refuse
        # every client. The new CA has revoked nothing yet.
        write_crl(directory, now=now)
    return Issued(cert_path, key_path, created=True)


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            if not re.match(r"^[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})$", h):
                raise CertError(f"host {h!r} is neither an IP address nor a DNS name") from None
            names.append(x509.DNSName(h.lower()))
    return x509.SubjectAlternativeName(names)


def _fits(cert_path: Path, key_path: Path, ca: x509.Certificate,
          san: x509.SubjectAlternativeName | None, now: dt.datetime, revoked: set[int]) -> bool:
    """An existing leaf is kept when it is signed by this CA, is not revoked, names the
    same hosts and has more than RENEW_BEFORE to run."""
    if not cert_path.is_file() or not key_path.is_file():
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return False
    if cert.serial_number in revoked:
        return False  # revoked: a new certificate, never the refused one
    if san is not None:
        try:
            have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        if set(have) != set(san):
            return False
    return True


def _issue(ca_dir: Path, folder: str, name: str, san: x509.SubjectAlternativeName | None,
           usage: x509.ObjectIdentifier, *, days: int, force: bool, now: dt.datetime | None,
           not_before: dt.datetime | None, owner: str | None) -> Issued:
    uid_gid = _user(owner)
    ca_cert, ca_key = load_ca(ca_dir)
    cert_path = ca_dir / folder / f"{name}.crt"
    key_path = ca_dir / folder / f"{name}.key"
    now = now or _now()
    if not force and not_before is None and _fits(cert_path, key_path, ca_cert, san, now,
                                                  _revoked(ca_dir, ca_cert)):
        if uid_gid is not None:
            os.chown(key_path, *uid_gid)
        key_path.chmod(0o600)
        return Issued(cert_path, key_path, created=False)
    start = not_before or now - BACKDATE
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=True, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_key.public_key()), critical=False)
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(key_path, _key_pem(key), 0o600, owner)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return Issued(cert_path, key_path, created=True)


def issue_service(ca_dir: Path, name: str, hosts: Sequence[str], *, days: int = LEAF_DAYS,
                  force: bool = False, now: dt.datetime | None = None,
                  not_before: dt.datetime | None = None, owner: str | None = None) -> Issued:
    """A server certificate for ``hosts`` (IP addresses and DNS names, e.g. the broker's).

    ``owner``: the user the server runs as; its key is then owned by that user, 0600.
    ``not_before`` (tests: an expired certificate) always issues anew.
    """
    _check_name("service", name)
    if not hosts:
        raise CertError("a service certificate needs at least one --host")
    return _issue(ca_dir, "services", name, _san(list(dict.fromkeys(hosts))),
                  ExtendedKeyUsageOID.SERVER_AUTH, days=days, force=force, now=now,
                  not_before=not_before, owner=owner)


def issue_device(ca_dir: Path, device_id: str, *, days: int = LEAF_DAYS, force: bool = False,
                 now: dt.datetime | None = None, owner: str | None = None) -> Issued:
    """A client certificate whose common name is the device id (for brokers that require
    client certificates, e.g. Mosquitto's ``use_identity_as_username``)."""
    _check_name("device", device_id)
    return _issue(ca_dir, "devices", device_id, None, ExtendedKeyUsageOID.CLIENT_AUTH,
                  days=days, force=force, now=now, not_before=None, owner=owner)


# -- revocation --------------------------------------------------------------------------


def _read_crl(directory: Path,
              ca: x509.Certificate) -> x509.CertificateRevocationList | None:
    """The CA's current list; None when there is none yet, or it was signed by another
    CA (replaced with ``init --force``: nothing of the old CA is trusted any more)."""
    path = directory / CA_CRL
    if not path.is_file():
        return None
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except (OSError, ValueError) as e:
        raise CertError(f"cannot read the revocation list {path}: {e}") from None
    pub = ca.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(pub):
        return None
    return crl


def _revoked(directory: Path, ca: x509.Certificate) -> set[int]:
    crl = _read_crl(directory, ca)
    return {r.serial_number for r in crl} if crl is not None else set()


def write_crl(directory: Path, *, revoke: Sequence[x509.Certificate] = (),
              days: int = CRL_DAYS, now: dt.datetime | None = None) -> Path:
    """(Re)sign the CA's revocation list ``ca.crl`` (0644): what it revoked before, plus
    ``revoke``, valid from now for ``days``. Returns its path."""
    if days < 1:
        raise CertError(f"--days {days}: a revocation list must be valid for a day or more")
    ca_cert, ca_key = load_ca(directory)
    now = now or _now()
    old = _read_crl(directory, ca_cert)
    entries: dict[int, x509.RevokedCertificate] = {r.serial_number: r for r in old or ()}
    for c in revoke:
        if c.issuer != ca_cert.subject:
            raise CertError(f"certificate {c.subject.rfc4514_string()} was not issued by "
                            "this CA")
        if c.serial_number not in entries:
            entries[c.serial_number] = (
                x509.RevokedCertificateBuilder().serial_number(c.serial_number)
                .revocation_date(now).build())
    number = 1
    if old is not None:
        with contextlib.suppress(x509.ExtensionNotFound):
            number = old.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - BACKDATE)
        .next_update(now + dt.timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_key.public_key()), critical=False)
    )
    for entry in sorted(entries.values(), key=lambda r: r.serial_number):
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(ca_key, hashes.SHA256())
    path = directory / CA_CRL
    _write(path, crl.public_bytes(serialization.Encoding.PEM), 0o644)
    return path


def revoke_device(ca_dir: Path, device_id: str, *, days: int = CRL_DAYS,
                  now: dt.datetime | None = None) -> Path:
    """Revoke ``devices/ID.crt`` (the device's client certificate): its serial goes into
    ``ca.crl``, and the next ``issue_device`` for it issues a new certificate. Revoking
    twice is harmless. Returns the list's path; the broker must be given it (copied and
    reloaded: ``dolbom.stack.mosquitto.Mosquitto.update_crl``)."""
    _check_name("device", device_id)
    path = ca_dir / "devices" / f"{device_id}.crt"
    if not path.is_file():
        raise CertError(f"no certificate for device {device_id} ({path})")
    return write_crl(ca_dir, revoke=[_read_cert(path)], days=days, now=now)


def revoked_serials(ca_dir: Path) -> set[int]:
    """The serial numbers the CA's current list revokes (empty without a list)."""
    ca_cert, _ = load_ca(ca_dir)
    return _revoked(ca_dir, ca_cert)

"""A small local CA for the broker's TLS (DESIGN.md §2 "Transport security").

``dolbom certs init`` makes the CA, ``dolbom certs service`` a server certificate for
the broker, ``dolbom certs device`` an optional client certificate, ``dolbom certs
revoke`` revokes one into the CA's revocation list (``ca.crl``), which ``dolbom certs
crl`` re-signs. The CA's PEM is
what each device config and each service's ``DOLBOM_MQTT__TLS__CA_FILE`` carry.
"""

from dolbom.certs.ca import (
    CA_CERT,
    CA_CRL,
    CA_KEY,
    Issued,
    init_ca,
    issue_device,
    issue_service,
    load_ca,
    revoke_device,
    revoked_serials,
    write_crl,
)
from dolbom.certs.errors import CertError

__all__ = ["CA_CERT", "CA_CRL", "CA_KEY", "CertError", "Issued", "init_ca", "issue_device",
           "issue_service", "load_ca", "revoke_device", "revoked_serials", "write_crl"]

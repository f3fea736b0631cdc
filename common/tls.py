"""The cluster's certificates: a CA, the head node's certificate, node and user certificates
(`shoal certs init` and `shoal certs issue`), and the gRPC credentials made from them.

Keys are ECDSA P-256, written 0600. A certificate's common name is who it speaks for (a node
name or a user name); its organizational unit says what: "node", "user", or a role ("Admin",
"JobAdmin") for a user. The head node's certificate names localhost, 127.0.0.1, this host's
name and any names given, so agents and clients can check it by the address they dial.

The head node requires every client to show a certificate the CA signed (mutual TLS:
grpcio's Python API cannot ask for a certificate without requiring one). Callers who prove
who they are with a token instead (users with `shoal user token`, agents with a join token)
show the cluster's shared client certificate, `client.crt` (unit "client"), which names no
one and grants nothing by itself: it only lets the connection be made.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

# cryptography (and pathlib, datetime, ipaddress) are imported where certificates are made or
# read, not here: a client that only hands files to gRPC (every `shoal` command) would
# otherwise pay a fifth of its start-up, and a plaintext one needs none of them.
if TYPE_CHECKING:
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

CA_CERT, CA_KEY = "ca.crt", "ca.key"
HEAD_CERT, HEAD_KEY = "head.crt", "head.key"
CLIENT_CERT, CLIENT_KEY = "client.crt", "client.key"
CLIENT = "client"
KINDS = ("node", "user")
ROLES = ("User", "JobAdmin", "Admin")


@dataclass(frozen=True)
class Files:
    """A certificate and its key (and the CA that checks the other side)."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None

    @classmethod
    def from_env(cls) -> Files | None:
        """$SHOAL_CA, $SHOAL_CERT, $SHOAL_KEY (what `shoal --ca/--cert/--key` set), if given."""
        ca = os.environ.get("SHOAL_CA")
        if not ca:
            return None
        from pathlib import Path

        cert, key = os.environ.get("SHOAL_CERT"), os.environ.get("SHOAL_KEY")
        return cls(Path(ca), Path(cert) if cert else None, Path(key) if key else None)

    def read(self) -> tuple[bytes, bytes | None, bytes | None]:
        """(CA, certificate, key); without a certificate of its own, the shared client one
        beside the CA, if it is there."""
        cert, key = self.cert, self.key
        if cert is None and (self.ca.parent / CLIENT_CERT).exists():
            cert, key = self.ca.parent / CLIENT_CERT, self.ca.parent / CLIENT_KEY
        try:
            return (self.ca.read_bytes(), cert.read_bytes() if cert else None, key.read_bytes() if key else None)
        except OSError as e:
            raise ValueError(f"cannot read {e.filename}: {e.strerror}") from None


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common: str, unit: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Shoal"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _builder(subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey, days: int, at: float
             ) -> x509.CertificateBuilder:
    import datetime

    from cryptography import x509

    now = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days)))


def init(directory: Path, now: float, names: list[str] = (), days: int = 3650) -> list[Path]:  # type: ignore[assignment]
    """A new CA, the head node's certificate and the shared client one in `directory`, valid
    from `now`; refuses to overwrite a CA."""
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    directory = Path(directory)
    if (directory / CA_KEY).exists():
        raise ValueError(f"{directory / CA_KEY} already exists: the cluster has a CA (issue certificates with "
                         f"`shoal certs issue`, or choose another --dir)")
    ca_key = _key()
    ca_name = _name("Shoal cluster CA", "ca")
    ca = (_builder(ca_name, ca_name, ca_key.public_key(), days, now)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    _write(directory / CA_KEY, _pem_key(ca_key), secret=True)
    _write(directory / CA_CERT, ca.public_bytes(serialization.Encoding.PEM))
    head = [*_sign(directory, "head", "head", days, now,
                   [*names, "localhost", socket.gethostname(), "127.0.0.1", "::1"])]
    os.replace(head[0], directory / HEAD_KEY)
    os.replace(head[1], directory / HEAD_CERT)
    client = _sign(directory, "any", CLIENT, days, now)
    os.replace(client[0], directory / CLIENT_KEY)
    os.replace(client[1], directory / CLIENT_CERT)
    return [directory / CA_CERT, directory / CA_KEY, directory / HEAD_CERT, directory / HEAD_KEY,
            directory / CLIENT_CERT, directory / CLIENT_KEY]


def issue(directory: Path, kind: str, name: str, now: float, role: str = "", days: int = 365) -> tuple[Path, Path]:
    """A node or user certificate signed by the CA in `directory`: (key, cert)."""
    if kind not in KINDS:
        raise ValueError(f"a certificate is for a node or a user, not {kind!r}")
    if not name or any(c.isspace() or c in ",/=" for c in name):
        raise ValueError(f"{kind} name {name!r} must be non-empty, without spaces, commas, '/' or '='")
    if role and (kind != "user" or role not in ROLES):
        raise ValueError(f"--role is for users, one of {', '.join(ROLES)}")
    from pathlib import Path

    return _sign(Path(directory), name, role or kind, days, now)


def _sign(directory: Path, name: str, unit: str, days: int, now: float,
          alt_names: list[str] = ()  # type: ignore[assignment]
          ) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    try:
        ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), None)
        ca = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
    except OSError:
        raise ValueError(f"no cluster CA in {directory}: run `shoal certs init --dir {directory}` first") from None
    key = _key()
    builder = _builder(_name(name, unit), ca.subject, key.public_key(), days, now)
    sans: list[x509.GeneralName] = []
    for alt in dict.fromkeys(alt_names or [name]):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(alt)))
        except ValueError:
            sans.append(x509.DNSName(alt))
    builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    stem = f"{unit.lower()}-{name}" if unit != "head" else "head-new"
    key_path, cert_path = directory / f"{stem}.key", directory / f"{stem}.crt"
    _write(key_path, _pem_key(key), secret=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@lru_cache(maxsize=1024)
def subject_of(pem: bytes) -> tuple[str, str]:
    """(common name, organizational unit) of a PEM certificate."""
    return identify(pem)[:2]  # type: ignore[return-value]


def expiry(pem: bytes) -> float:
    """When a PEM certificate stops being valid (Unix time)."""
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem).not_valid_after_utc.timestamp()


def identify(pem: bytes) -> tuple[str, str, str]:
    """(common name, organizational unit, serial number in hex) of a PEM certificate."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(pem)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ou = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return (str(cn[0].value) if cn else "", str(ou[0].value) if ou else "", format(cert.serial_number, "x"))

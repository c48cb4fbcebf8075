"""Certificate credentials: principals that authenticate with a signed client assertion
(what azure-identity's CertificateCredential sends through MSAL)."""

import base64
import datetime
import hashlib
import json
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def generate(path: str, common_name: str) -> str:
    """Write a new RSA key + self-signed certificate (PEM, key first) to ``path``; return the certificate PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with open(path, "w", encoding="ascii") as fh:
        fh.write(key_pem + cert_pem)
    return cert_pem


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_assertion(assertion: str, client_id: str, cert_pem: str) -> str | None:
    """Check a client assertion against the registered certificate. None if valid, else why not."""
    try:
        head_b64, body_b64, sig_b64 = assertion.split(".")
        header = json.loads(_b64decode(head_b64))
        claims = json.loads(_b64decode(body_b64))
        signature = _b64decode(sig_b64)
    except ValueError:
        return "The client assertion is not a valid JWT."
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    der = cert.public_bytes(serialization.Encoding.DER)
    thumbprints = {
        "x5t#S256": base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode(),
        "x5t": base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode(),  # noqa: S324 - the JWT x5t header is SHA-1
    }
    if not any(str(header.get(k, "")).rstrip("=") == v for k, v in thumbprints.items()):
        used = header.get("x5t#S256") or header.get("x5t")
        return (
            "The certificate with identifier used to sign the client assertion is not registered on application. "
            f"[Reason - The key was not found., Thumbprint of key used by client: '{used}']"
        )
    signing_input = f"{head_b64}.{body_b64}".encode()
    public_key = cert.public_key()
    try:
        if header.get("alg") == "PS256":
            public_key.verify(signature, signing_input, padding.PSS(padding.MGF1(hashes.SHA256()), hashes.SHA256.digest_size), hashes.SHA256())  # type: ignore[union-attr, call-arg]
        elif header.get("alg") == "RS256":
            public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr, call-arg]
        else:
            return f"The client assertion uses the unsupported algorithm '{header.get('alg')}'."
    except InvalidSignature:
        return "Client assertion failed signature validation."
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        return (
            f"Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://aka.ms/certCreds ({client_id})."
        )
    if not claims.get("exp") or claims["exp"] < time.time() or claims.get("nbf", 0) > time.time() + 300:
        return "Client assertion is not within its valid time range."
    return None

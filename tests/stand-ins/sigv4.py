"""Verify AWS Signature Version 4 on requests received by the STS gate.

Follows the signing steps in the AWS documentation ("Create a signed AWS API
request"): canonical request, string to sign, derived key, HMAC-SHA256. Both
the Authorization header form and the presigned query-string form are read.
"""

import datetime
import hashlib
import hmac
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"

# Real STS rejects a request whose X-Amz-Date is more than 5 minutes off.
MAX_CLOCK_SKEW = datetime.timedelta(minutes=5)

_AUTH_HEADER = re.compile(
    r"^AWS4-HMAC-SHA256\s+"
    r"Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*"
    r"Signature=(?P<signature>[0-9a-fA-F]+)\s*$"
)


@dataclass
class SignedRequest:
    """Signature fields parsed from one request."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: list
    signature: str
    amz_date: str
    security_token: str | None
    presigned: bool


class SignatureError(Exception):
    """A request whose signature is missing, malformed or wrong.

    `code` is the AWS error code that STS returns for the case.
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def parse(headers, query_pairs):
    """Parse the signature fields of a request, or raise SignatureError.

    `headers` is a case-insensitive mapping, `query_pairs` a list of decoded
    (name, value) pairs from the URL.
    """
    query = dict(query_pairs)
    authorization = headers.get("Authorization")
    if authorization:
        match = _AUTH_HEADER.match(authorization.strip())
        if not match:
            raise SignatureError(
                "IncompleteSignature",
                "Authorization header requires 'Credential', 'SignedHeaders' "
                "and 'Signature' parameters with algorithm AWS4-HMAC-SHA256.",
            )
        credential = match.group("credential")
        signed = match.group("signed")
        signature = match.group("signature")
        amz_date = headers.get("X-Amz-Date") or ""
        token = headers.get("X-Amz-Security-Token")
        presigned = False
    elif "X-Amz-Signature" in query:
        if query.get("X-Amz-Algorithm") != ALGORITHM:
            raise SignatureError(
                "IncompleteSignature", "X-Amz-Algorithm must be AWS4-HMAC-SHA256."
            )
        credential = query.get("X-Amz-Credential", "")
        signed = query.get("X-Amz-SignedHeaders", "")
        signature = query["X-Amz-Signature"]
        amz_date = query.get("X-Amz-Date", "")
        token = query.get("X-Amz-Security-Token")
        presigned = True
    else:
        raise SignatureError(
            "MissingAuthenticationToken", "Request is missing Authentication Token"
        )

    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureError(
            "IncompleteSignature",
            f"Credential '{credential}' must have the form "
            "<access key id>/<date>/<region>/<service>/aws4_request.",
        )
    if not amz_date:
        raise SignatureError(
            "IncompleteSignature", "Request is missing the X-Amz-Date header."
        )
    return SignedRequest(
        access_key_id=parts[0],
        date=parts[1],
        region=parts[2],
        service=parts[3],
        signed_headers=signed.split(";"),
        signature=signature.lower(),
        amz_date=amz_date,
        security_token=token,
        presigned=presigned,
    )


def check_time(signed, now=None):
    """Raise SignatureError when the request date is malformed or too far off."""
    try:
        when = datetime.datetime.strptime(signed.amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
    except ValueError:
        raise SignatureError(
            "IncompleteSignature",
            f"Date '{signed.amz_date}' must have the form YYYYMMDDTHHMMSSZ.",
        ) from None
    if signed.date != signed.amz_date[:8]:
        raise SignatureError(
            "SignatureDoesNotMatch",
            f"Credential should be scoped to a valid date: '{signed.amz_date[:8]}'.",
        )
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if abs(now - when) > MAX_CLOCK_SKEW:
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        raise SignatureError(
            "SignatureDoesNotMatch",
            f"Signature expired: {signed.amz_date} is now earlier or later than "
            f"{stamp} (allowed clock skew is 5 minutes).",
        )


def verify(signed, secret_access_key, method, raw_path, raw_query, headers, body):
    """Raise SignatureError unless the request is signed with the secret."""
    missing = [name for name in signed.signed_headers if name not in headers]
    if "host" not in signed.signed_headers or missing:
        raise SignatureError(
            "SignatureDoesNotMatch",
            "The request must sign the host header and every header it lists.",
        )

    canonical = canonical_request(
        method, raw_path, raw_query, headers, signed, body
    )
    scope = f"{signed.date}/{signed.region}/{signed.service}/aws4_request"
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            signed.amz_date,
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = signing_key(secret_access_key, signed.date, signed.region, signed.service)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signed.signature):
        raise SignatureError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you "
            "provided. Check your AWS Secret Access Key and signing method. Consult "
            "the service documentation for details.",
        )


def signing_key(secret_access_key, date, region, service):
    """Derive the SigV4 signing key for one date, region and service."""
    key = ("AWS4" + secret_access_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def canonical_request(method, raw_path, raw_query, headers, signed, body):
    """Build the canonical request string for a non-S3 service."""
    header_lines = []
    for name in sorted(signed.signed_headers):
        values = headers.get_all(name) or []
        value = ",".join(" ".join(v.split()) for v in values)
        header_lines.append(f"{name}:{value}\n")

    payload_hash = headers.get("X-Amz-Content-SHA256")
    if not payload_hash:
        payload_hash = hashlib.sha256(body).hexdigest()

    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(raw_query, skip_signature=signed.presigned),
            "".join(header_lines),
            ";".join(signed.signed_headers),
            payload_hash,
        ]
    )


def canonical_uri(raw_path):
    """Normalize the path and encode it again, as every service but S3 expects."""
    path = raw_path or "/"
    normalized = posixpath.normpath(path)
    if normalized.startswith("//"):
        normalized = "/" + normalized.lstrip("/")
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    return quote(normalized, safe="/~")


def canonical_query(raw_query, skip_signature):
    """Sort and re-encode the query pairs, without X-Amz-Signature when presigned."""
    pairs = []
    for item in raw_query.split("&") if raw_query else []:
        name, _, value = item.partition("=")
        name = unquote(name)
        if skip_signature and name == "X-Amz-Signature":
            continue
        pairs.append((quote(name, safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))

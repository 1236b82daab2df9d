"""STS behaviour that moto leaves out: input validation and MFA checks.

Messages and codes copy what the real STS returns for GetSessionToken
(API reference "GetSessionToken", constraints of DurationSeconds,
SerialNumber and TokenCode).
"""

import re

# Actions served by the STS endpoint. All use the awsQuery protocol.
STS_ACTIONS = {
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "AssumeRoot",
    "DecodeAuthorizationMessage",
    "GetAccessKeyInfo",
    "GetCallerIdentity",
    "GetFederationToken",
    "GetSessionToken",
}

# STS accepts these without a signature: the identity token is the proof.
UNSIGNED_ACTIONS = {"AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"}

MIN_DURATION_SECONDS = 900
MAX_DURATION_SECONDS = 129600
SERIAL_NUMBER_PATTERN = r"[\w+=/:,.@-]*"
TOKEN_CODE_PATTERN = r"[\d]*"

WRONG_CODE_MESSAGE = "MultiFactorAuthentication failed with invalid MFA one time pass code. "
UNKNOWN_DEVICE_MESSAGE = (
    "MultiFactorAuthentication failed, unable to validate MFA code.  "
    "Please verify your MFA serial number is valid and associated with this user."
)


class StsError(Exception):
    """An error that STS returns instead of a result."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def validate_get_session_token(params):
    """Raise StsError(400, ValidationError) for parameters STS rejects."""
    failures = []

    duration = params.get("DurationSeconds")
    if duration is not None:
        failures += _check_duration(duration)

    serial = params.get("SerialNumber")
    if serial is not None:
        failures += _check_string(serial, "serialNumber", 9, 256, SERIAL_NUMBER_PATTERN)

    code = params.get("TokenCode")
    if code is not None:
        failures += _check_string(code, "tokenCode", 6, 6, TOKEN_CODE_PATTERN)

    if failures:
        count = len(failures)
        noun = "validation error" if count == 1 else "validation errors"
        message = f"{count} {noun} detected: " + "; ".join(failures)
        raise StsError(400, "ValidationError", message)


def check_mfa(params, serial_number, wrong_token_code):
    """Raise StsError(403, AccessDenied) for an unknown device or the wrong code."""
    serial = params.get("SerialNumber")
    code = params.get("TokenCode")
    if serial is not None and serial != serial_number:
        raise StsError(403, "AccessDenied", UNKNOWN_DEVICE_MESSAGE)
    if code is not None and code == wrong_token_code:
        raise StsError(403, "AccessDenied", WRONG_CODE_MESSAGE)


def _check_duration(text):
    # NOTE: the wording STS uses for a non-integer duration is not documented;
    # this message follows the constraint style of the other failures.
    try:
        value = int(text)
    except ValueError:
        return [_failure(text, "durationSeconds", "Member must be an integer")]
    if value < MIN_DURATION_SECONDS:
        rule = f"Member must have value greater than or equal to {MIN_DURATION_SECONDS}"
        return [_failure(text, "durationSeconds", rule)]
    if value > MAX_DURATION_SECONDS:
        rule = f"Member must have value less than or equal to {MAX_DURATION_SECONDS}"
        return [_failure(text, "durationSeconds", rule)]
    return []


def _check_string(text, member, min_length, max_length, pattern):
    if len(text) < min_length:
        rule = f"Member must have length greater than or equal to {min_length}"
        return [_failure(text, member, rule)]
    if len(text) > max_length:
        rule = f"Member must have length less than or equal to {max_length}"
        return [_failure(text, member, rule)]
    # Java's \w and \d, which STS patterns use, match ASCII only.
    if not re.fullmatch(pattern, text, flags=re.ASCII):
        rule = f"Member must satisfy regular expression pattern: {pattern}"
        return [_failure(text, member, rule)]
    return []


def _failure(value, member, rule):
    return f"Value '{value}' at '{member}' failed to satisfy constraint: {rule}"

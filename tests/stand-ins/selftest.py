#!/usr/bin/env python3
"""Self-tests of the stand-ins: the STS gate through boto3, the registry, the engine.

  python3 tests/stand-ins/selftest.py [-k PATTERN]

Starts its own stand-ins in temporary directories and ends with a line
"N passed, N failed".
"""

import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

# The helper modules stay free of __pycache__ folders in the source tree.
sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# Set before boto3 loads, so no test can reach a metadata service, a proxy or
# the user's AWS files.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
for _name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)

import boto3  # noqa: E402
import botocore.config  # noqa: E402
from botocore import UNSIGNED  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

import services  # noqa: E402

STANDINS = os.path.join(HERE, "standins.py")

# No client-side checks and no retries: each call reaches the gate exactly once.
RAW_CONFIG = botocore.config.Config(
    parameter_validation=False, retries={"total_max_attempts": 1, "mode": "standard"}
)

standins = {}
state_dir = None


def run_standins(*args, env=None):
    return subprocess.run(
        [sys.executable, STANDINS, *args], capture_output=True, text=True, env=env, timeout=180
    )


def start(state, *args):
    result = run_standins("start", "--state", state, *args)
    if result.returncode != 0:
        raise RuntimeError(f"standins start failed:\n{result.stderr}")
    return json.loads(result.stdout)


def setUpModule():
    global state_dir
    state_dir = tempfile.mkdtemp(prefix="standins-selftest-")
    aws_dir = os.path.join(state_dir, "aws")
    standins.update(start(state_dir))
    os.environ["AWS_CONFIG_FILE"] = os.path.join(aws_dir, "config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(aws_dir, "credentials")


def tearDownModule():
    if state_dir:
        run_standins("stop", "--state", state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


def sts_client(secret=None, access_key=None, config=RAW_CONFIG):
    return boto3.client(
        "sts",
        endpoint_url=standins["awsEndpoint"],
        region_name=standins["region"],
        aws_access_key_id=access_key or standins["accessKeyId"],
        aws_secret_access_key=secret or standins["secretAccessKey"],
        config=config,
    )


def session_credentials():
    result = sts_client().get_session_token(
        DurationSeconds=3600, SerialNumber=standins["serialNumber"], TokenCode="123456"
    )
    return result["Credentials"]


def session_client(service, credentials):
    return boto3.client(
        service,
        endpoint_url=standins["awsEndpoint"],
        region_name=standins["region"],
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        config=RAW_CONFIG,
    )


def control(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        standins["control"] + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def http_status(url, auth=None, context=None):
    handlers = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


class GetSessionTokenRejections(unittest.TestCase):
    def call(self, **params):
        arguments = {
            "DurationSeconds": 3600,
            "SerialNumber": standins["serialNumber"],
            "TokenCode": "123456",
        }
        arguments.update(params)
        with self.assertRaises(ClientError) as caught:
            sts_client().get_session_token(**arguments)
        return caught.exception.response

    def assert_validation(self, response, fragment):
        self.assertEqual(response["ResponseMetadata"]["HTTPStatusCode"], 400)
        self.assertEqual(response["Error"]["Code"], "ValidationError")
        self.assertEqual(response["Error"]["Type"], "Sender")
        self.assertIn(fragment, response["Error"]["Message"])

    def test_five_digit_code(self):
        response = self.call(TokenCode="12345")
        self.assert_validation(
            response,
            "1 validation error detected: Value '12345' at 'tokenCode' failed to satisfy "
            "constraint: Member must have length greater than or equal to 6",
        )

    def test_seven_digit_code(self):
        response = self.call(TokenCode="1234567")
        self.assert_validation(response, "Member must have length less than or equal to 6")

    def test_letters_in_code(self):
        response = self.call(TokenCode="12345a")
        self.assert_validation(response, r"regular expression pattern: [\d]*")

    def test_non_ascii_digits_in_code(self):
        response = self.call(TokenCode="12345\u0661")
        self.assert_validation(response, r"regular expression pattern: [\d]*")

    def test_duration_899(self):
        response = self.call(DurationSeconds=899)
        self.assert_validation(
            response,
            "Value '899' at 'durationSeconds' failed to satisfy constraint: "
            "Member must have value greater than or equal to 900",
        )

    def test_duration_129601(self):
        response = self.call(DurationSeconds=129601)
        self.assert_validation(response, "Member must have value less than or equal to 129600")

    def test_short_serial_number(self):
        response = self.call(SerialNumber="arn:mfa")
        self.assert_validation(response, "Member must have length greater than or equal to 9")

    def test_long_serial_number(self):
        response = self.call(SerialNumber="a" * 257)
        self.assert_validation(response, "Member must have length less than or equal to 256")

    def test_serial_number_with_space(self):
        response = self.call(SerialNumber="arn:aws:iam::123456789012:mfa/dev eloper")
        self.assert_validation(response, r"regular expression pattern: [\w+=/:,.@-]*")

    def test_two_invalid_values(self):
        response = self.call(DurationSeconds=100, TokenCode="1")
        message = response["Error"]["Message"]
        self.assertTrue(message.startswith("2 validation errors detected: "), message)
        self.assertIn("'durationSeconds'", message)
        self.assertIn("; Value '1' at 'tokenCode'", message)

    def test_wrong_code(self):
        response = self.call(TokenCode=standins["wrongTokenCode"])
        self.assertEqual(response["ResponseMetadata"]["HTTPStatusCode"], 403)
        self.assertEqual(response["Error"]["Code"], "AccessDenied")
        self.assertIn("invalid MFA one time pass code", response["Error"]["Message"])

    def test_unknown_mfa_device(self):
        response = self.call(SerialNumber="arn:aws:iam::123456789012:mfa/someone-else")
        self.assertEqual(response["ResponseMetadata"]["HTTPStatusCode"], 403)
        self.assertEqual(response["Error"]["Code"], "AccessDenied")
        self.assertIn("unable to validate MFA code", response["Error"]["Message"])


class StsAuthentication(unittest.TestCase):
    def test_good_call_returns_credentials(self):
        credentials = session_credentials()
        self.assertTrue(credentials["AccessKeyId"])
        self.assertTrue(credentials["SessionToken"])

    def test_duration_sets_expiration(self):
        result = sts_client().get_session_token(
            DurationSeconds=900, SerialNumber=standins["serialNumber"], TokenCode="000000"
        )
        remaining = result["Credentials"]["Expiration"].timestamp() - time.time()
        self.assertGreater(remaining, 800)
        self.assertLessEqual(remaining, 900)

    def test_bad_signature(self):
        with self.assertRaises(ClientError) as caught:
            sts_client(secret="x" * 40).get_caller_identity()
        error = caught.exception.response
        self.assertEqual(error["ResponseMetadata"]["HTTPStatusCode"], 403)
        self.assertEqual(error["Error"]["Code"], "SignatureDoesNotMatch")

    def test_unknown_access_key(self):
        with self.assertRaises(ClientError) as caught:
            sts_client(access_key="AKIAAAAAAAAAAAAAAAAA").get_caller_identity()
        error = caught.exception.response
        self.assertEqual(error["ResponseMetadata"]["HTTPStatusCode"], 403)
        self.assertEqual(error["Error"]["Code"], "InvalidClientTokenId")

    def test_unsigned_request(self):
        config = RAW_CONFIG.merge(botocore.config.Config(signature_version=UNSIGNED))
        with self.assertRaises(ClientError) as caught:
            sts_client(config=config).get_session_token(
                SerialNumber=standins["serialNumber"], TokenCode="123456"
            )
        error = caught.exception.response
        self.assertEqual(error["ResponseMetadata"]["HTTPStatusCode"], 403)
        self.assertEqual(error["Error"]["Code"], "MissingAuthenticationToken")

    def test_session_credentials_sign_calls(self):
        client = session_client("sts", session_credentials())
        identity = client.get_caller_identity()
        self.assertEqual(identity["Account"], standins["accountId"])

    def test_session_token_mismatch(self):
        credentials = dict(session_credentials(), SessionToken="not-the-token")
        with self.assertRaises(ClientError) as caught:
            session_client("sts", credentials).get_caller_identity()
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidClientTokenId")

    def test_session_credentials_cannot_nest(self):
        client = session_client("sts", session_credentials())
        with self.assertRaises(ClientError) as caught:
            client.get_session_token()
        error = caught.exception.response
        self.assertEqual(error["Error"]["Code"], "AccessDenied")
        self.assertIn("session credentials", error["Error"]["Message"])

    def test_ecr_token_expires_later(self):
        client = session_client("ecr", session_credentials())
        data = client.get_authorization_token()["authorizationData"][0]
        remaining = data["expiresAt"].timestamp() - time.time()
        self.assertGreater(remaining, 11 * 3600)
        token = base64.b64decode(data["authorizationToken"]).decode()
        self.assertEqual(token, f"AWS:{standins['accountId']}-auth-token")


class ControlApi(unittest.TestCase):
    def setUp(self):
        control("POST", "/reset")
        control("DELETE", "/faults")

    def tearDown(self):
        control("DELETE", "/faults")

    def test_stats_count_actions(self):
        client = sts_client()
        client.get_caller_identity()
        client.get_caller_identity()
        session_client("ecr", session_credentials()).get_authorization_token()
        status, stats = control("GET", "/stats")
        self.assertEqual(status, 200)
        self.assertEqual(stats.get("GetCallerIdentity"), 2)
        self.assertEqual(stats.get("GetSessionToken"), 1)
        self.assertEqual(stats.get("GetAuthorizationToken"), 1)

    def test_stats_count_rejected_calls(self):
        with self.assertRaises(ClientError):
            sts_client().get_session_token(TokenCode="1", SerialNumber=standins["serialNumber"])
        self.assertEqual(control("GET", "/stats")[1].get("GetSessionToken"), 1)

    def test_reset_zeroes_stats(self):
        sts_client().get_caller_identity()
        control("POST", "/reset")
        self.assertEqual(control("GET", "/stats")[1], {})

    def test_fault_answers_count_calls(self):
        status, _ = control(
            "POST",
            "/faults",
            {"action": "GetCallerIdentity", "status": 400, "code": "Throttling", "count": 2},
        )
        self.assertEqual(status, 200)
        client = sts_client()
        for attempt in (1, 2):
            with self.assertRaises(ClientError, msg=f"attempt {attempt}") as caught:
                client.get_caller_identity()
            self.assertEqual(caught.exception.response["Error"]["Code"], "Throttling")
            self.assertEqual(caught.exception.response["Error"]["Message"], "Rate exceeded")
        self.assertEqual(client.get_caller_identity()["Account"], standins["accountId"])

    def test_fault_on_json_action(self):
        client = session_client("ecr", session_credentials())
        control(
            "POST",
            "/faults",
            {"action": "GetAuthorizationToken", "status": 400, "code": "ThrottlingException"},
        )
        with self.assertRaises(ClientError) as caught:
            client.get_authorization_token()
        self.assertEqual(caught.exception.response["Error"]["Code"], "ThrottlingException")
        self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)

    def test_fault_with_server_status(self):
        control(
            "POST",
            "/faults",
            {"action": "GetCallerIdentity", "status": 503, "code": "ServiceUnavailable",
             "message": "down for the test"},
        )
        with self.assertRaises(ClientError) as caught:
            sts_client().get_caller_identity()
        error = caught.exception.response
        self.assertEqual(error["ResponseMetadata"]["HTTPStatusCode"], 503)
        self.assertEqual(error["Error"]["Message"], "down for the test")

    def test_clear_faults(self):
        control("POST", "/faults", {"action": "GetCallerIdentity", "code": "Throttling"})
        status, faults = control("DELETE", "/faults")
        self.assertEqual(status, 200)
        self.assertEqual(faults, [])
        self.assertEqual(sts_client().get_caller_identity()["Account"], standins["accountId"])

    def test_invalid_fault_rejected(self):
        status, body = control("POST", "/faults", {"action": "GetCallerIdentity", "status": 200})
        self.assertEqual(status, 400)
        self.assertIn("status", body["error"])

    def test_unknown_route(self):
        status, _ = control("GET", "/nothing")
        self.assertEqual(status, 404)


class Registry(unittest.TestCase):
    def test_requires_password(self):
        status, headers = http_status(standins["registry"]["url"] + "/v2/")
        self.assertEqual(status, 401)
        self.assertIn("Basic", headers.get("Www-Authenticate", ""))

    def test_wrong_password(self):
        status, _ = http_status(standins["registry"]["url"] + "/v2/", ("AWS", "wrong"))
        self.assertEqual(status, 401)

    def test_ecr_password_accepted(self):
        registry = standins["registry"]
        status, _ = http_status(registry["url"] + "/v2/", (registry["username"], registry["password"]))
        self.assertEqual(status, 200)


class RegistryTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.state = tempfile.mkdtemp(prefix="standins-tls-")
        cls.standins = start(cls.state, "--services", "registry", "--registry-tls")

    @classmethod
    def tearDownClass(cls):
        run_standins("stop", "--state", cls.state)
        shutil.rmtree(cls.state, ignore_errors=True)

    def test_serves_https(self):
        registry = self.standins["registry"]
        self.assertTrue(registry["url"].startswith("https://127.0.0.1:"))
        context = ssl.create_default_context(cafile=registry["caFile"])
        status, _ = http_status(registry["url"] + "/v2/", context=context)
        self.assertEqual(status, 401)

    def test_untrusted_without_ca(self):
        with self.assertRaises(urllib.error.URLError) as caught:
            http_status(self.standins["registry"]["url"] + "/v2/", context=ssl.create_default_context())
        self.assertIsInstance(caught.exception.reason, ssl.SSLCertVerificationError)

    def test_sts_not_started(self):
        self.assertIsNone(self.standins["awsEndpoint"])
        self.assertIsNone(self.standins["engine"])


class Engine(unittest.TestCase):
    def socket_path(self):
        return standins["engine"]["host"].removeprefix("unix://")

    def test_ping(self):
        self.assertTrue(services.ping_engine(self.socket_path()))

    def test_socket_not_system_default(self):
        self.assertNotEqual(self.socket_path(), "/var/run/docker.sock")
        self.assertTrue(self.socket_path().startswith(standins["engine"]["runDir"]))


class Lifecycle(unittest.TestCase):
    def test_second_start_rejected(self):
        result = run_standins("start", "--state", state_dir, "--services", "sts")
        self.assertEqual(result.returncode, 1)
        self.assertIn("run stop first", result.stderr)

    def test_stop_twice(self):
        state = tempfile.mkdtemp(prefix="standins-stop-")
        try:
            described = start(state, "--services", "sts")
            first = run_standins("stop", "--state", state)
            second = run_standins("stop", "--state", state)
            self.assertEqual(first.returncode, 0)
            self.assertIn("stopped", first.stdout)
            self.assertEqual(second.returncode, 0)
            self.assertIn("nothing runs", second.stdout)
            self.assertFalse(_is_running(described["pids"]["sts"]))
        finally:
            shutil.rmtree(state, ignore_errors=True)

    def test_failed_start_stops_others(self):
        state = tempfile.mkdtemp(prefix="standins-fail-")
        # docker-registry cannot be found on this PATH, so the registry fails after sts started.
        env = dict(os.environ, PATH=os.path.dirname(sys.executable) + ":/nonexistent")
        try:
            result = run_standins("start", "--state", state, "--services", "sts,registry", env=env)
            self.assertEqual(result.returncode, 1)
            self.assertIn("start failed: registry", result.stderr)
            self.assertFalse(os.path.exists(os.path.join(state, "processes.json")))
            self.assertFalse(os.path.exists(os.path.join(state, "standins.json")))
            with open(os.path.join(state, "sts.log"), encoding="utf-8") as file:
                self.assertIn("listening on", file.read())
            self.assertEqual(_processes_mentioning(state), [])
        finally:
            run_standins("stop", "--state", state)
            shutil.rmtree(state, ignore_errors=True)

    def test_long_state_dir_short_socket(self):
        parent = tempfile.mkdtemp(prefix="standins-long-")
        state = os.path.join(parent, "a-long-directory-name-" * 4, "state")
        try:
            described = start(state, "--services", "engine")
            socket_path = described["engine"]["host"].removeprefix("unix://")
            self.assertLess(len(socket_path.encode()), 108)
            self.assertTrue(services.ping_engine(socket_path))
            run_dir = described["engine"]["runDir"]
            run_standins("stop", "--state", state)
            self.assertFalse(os.path.exists(run_dir))
        finally:
            run_standins("stop", "--state", state)
            shutil.rmtree(parent, ignore_errors=True)


def _is_running(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _processes_mentioning(text):
    """Return the pids whose command line contains text."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _is_running(int(entry)):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as file:
                    if text.encode() in file.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def main():
    program = unittest.main(exit=False, verbosity=2)
    result = program.result
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed or result.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

"""HTTP proxy in front of moto that checks STS calls as the real STS does.

moto accepts any MFA code, duration and signature. The gate verifies the
SigV4 signature of every STS call, validates GetSessionToken parameters,
rejects the configured wrong MFA code, and forwards everything else to an
in-process moto server unchanged, except that ECR authorization tokens get
a real expiry time. A control API under /_standin counts
requests per action and injects faults.

Run by standins.py as: python3 sts_gate.py CONFIG_JSON READY_JSON
"""

import datetime
import http.client
import http.server
import json
import logging
import os
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections import Counter
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

# The helper modules stay free of __pycache__ folders in the source tree.
sys.dont_write_bytecode = True

import sigv4
import sts_rules

CONTROL_PREFIX = "/_standin"
UPSTREAM_TIMEOUT_SECONDS = 60
ECR_TOKEN_LIFETIME_SECONDS = 12 * 60 * 60
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}

log = logging.getLogger("sts-gate")


class SessionCredentials:
    """Temporary credentials that moto returned from GetSessionToken."""

    def __init__(self, secret_access_key, session_token, expiration):
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.expiration = expiration


class GateState:
    """Counters, pending faults and known credentials, shared by all handler threads."""

    def __init__(self, config):
        self.config = config
        self.lock = threading.Lock()
        self.stats = Counter()
        self.faults = []
        self.sessions = {}

    def count(self, action):
        with self.lock:
            self.stats[action] += 1

    def take_fault(self, action):
        """Return the first pending fault for the action and use up one of its count."""
        with self.lock:
            for fault in self.faults:
                if fault["action"] == action and fault["count"] > 0:
                    fault["count"] -= 1
                    return dict(fault)
        return None


class Request:
    """One received request, with its body read and its action identified."""

    def __init__(self, handler):
        self.method = handler.command
        split = urlsplit(handler.path)
        self.raw_path = split.path
        self.raw_query = split.query
        self.query_pairs = parse_qsl(split.query, keep_blank_values=True)
        self.headers = handler.headers
        self.body = _read_body(handler)

        self.params = dict(self.query_pairs)
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            text = self.body.decode("utf-8", errors="replace")
            self.params.update(parse_qsl(text, keep_blank_values=True))

        target = self.headers.get("X-Amz-Target")
        if target:
            self.protocol = "json"
            self.action = target.rsplit(".", 1)[-1]
        else:
            self.protocol = "query"
            self.action = self.params.get("Action")

    def is_sts(self):
        return self.protocol == "query" and self.action in sts_rules.STS_ACTIONS


def _read_body(handler):
    length = handler.headers.get("Content-Length")
    if length is not None:
        return handler.rfile.read(int(length))
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return b""


class GateHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "StsGate"
    # Headers and body leave in separate writes; with Nagle's algorithm the
    # body would wait for the client's delayed ACK, about 40 ms per call.
    disable_nagle_algorithm = True
    state: GateState = None

    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    def log_message(self, format, *args):
        # Each request is logged once by handle_any, with its action and outcome.
        pass

    def handle_any(self):
        if urlsplit(self.path).path.startswith(CONTROL_PREFIX):
            self.handle_control()
            return

        request = Request(self)
        if request.action:
            self.state.count(request.action)

        fault = self.state.take_fault(request.action) if request.action else None
        if fault:
            message = fault.get("message") or _default_fault_message(fault["code"])
            self.send_aws_error(request, fault["status"], fault["code"], message)
            log.info("%s %s -> injected %s", request.method, request.action, fault["code"])
            return

        if request.is_sts():
            try:
                self.check_sts(request)
            except (sts_rules.StsError, sigv4.SignatureError) as error:
                status = getattr(error, "status", 403)
                self.send_aws_error(request, status, error.code, error.message)
                log.info("%s %s -> %s %s", request.method, request.action, status, error.code)
                return

        self.forward(request)

    def check_sts(self, request):
        """Raise StsError or SignatureError for a call that STS would reject."""
        if request.action in sts_rules.UNSIGNED_ACTIONS:
            return
        config = self.state.config
        signed = sigv4.parse(request.headers, request.query_pairs)
        if signed.service != "sts":
            raise sigv4.SignatureError(
                "SignatureDoesNotMatch",
                "Credential should be scoped to correct service: 'sts'.",
            )
        sigv4.check_time(signed)

        session = self.state.sessions.get(signed.access_key_id)
        if signed.access_key_id == config["accessKeyId"]:
            secret = config["secretAccessKey"]
        elif session is not None:
            if signed.security_token != session.session_token:
                raise sts_rules.StsError(
                    403,
                    "InvalidClientTokenId",
                    "The security token included in the request is invalid.",
                )
            if session.expiration <= datetime.datetime.now(datetime.timezone.utc):
                raise sts_rules.StsError(
                    403,
                    "ExpiredToken",
                    "The security token included in the request is expired",
                )
            secret = session.secret_access_key
        else:
            raise sts_rules.StsError(
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        sigv4.verify(
            signed,
            secret,
            request.method,
            request.raw_path,
            request.raw_query,
            request.headers,
            request.body,
        )

        if request.action != "GetSessionToken":
            return
        if session is not None:
            raise sts_rules.StsError(
                403,
                "AccessDenied",
                "Cannot call GetSessionToken with session credentials",
            )
        sts_rules.validate_get_session_token(request.params)
        sts_rules.check_mfa(request.params, config["serialNumber"], config["wrongTokenCode"])

    def forward(self, request):
        upstream = http.client.HTTPConnection(
            "127.0.0.1", self.state.config["motoPort"], timeout=UPSTREAM_TIMEOUT_SECONDS
        )
        try:
            upstream.putrequest(
                request.method, self.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in request.headers.items():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    upstream.putheader(name, value)
            upstream.putheader("Content-Length", str(len(request.body)))
            upstream.endheaders(request.body)
            response = upstream.getresponse()
            body = response.read()
        except OSError as error:
            log.error("%s %s -> moto failed: %s", request.method, request.action, error)
            self.send_aws_error(request, 502, "BadGateway", f"moto did not answer: {error}")
            return
        finally:
            upstream.close()

        if request.action == "GetSessionToken" and response.status == 200:
            self.remember_session(body)
        if request.action == "GetAuthorizationToken" and response.status == 200:
            body = _refresh_ecr_expiry(body)

        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if request.method != "HEAD":
            self.wfile.write(body)
        log.info("%s %s %s -> %s", request.method, self.path, request.action, response.status)

    def remember_session(self, body):
        """Store the credentials of a GetSessionToken result, to verify calls signed with them."""
        values = {}
        for element in ElementTree.fromstring(body).iter():
            values[element.tag.rsplit("}", 1)[-1]] = element.text
        expiration = datetime.datetime.fromisoformat(values["Expiration"].replace("Z", "+00:00"))
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=datetime.timezone.utc)
        with self.state.lock:
            self.state.sessions[values["AccessKeyId"]] = SessionCredentials(
                values["SecretAccessKey"], values["SessionToken"], expiration
            )

    def send_aws_error(self, request, status, code, message):
        request_id = str(uuid.uuid4())
        if request.protocol == "json":
            body = json.dumps({"__type": code, "message": message}).encode()
            content_type = "application/x-amz-json-1.1"
        else:
            sender = "Sender" if status < 500 else "Receiver"
            body = (
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n'
                "  <Error>\n"
                f"    <Type>{sender}</Type>\n"
                f"    <Code>{escape(code)}</Code>\n"
                f"    <Message>{escape(message)}</Message>\n"
                "  </Error>\n"
                f"  <RequestId>{request_id}</RequestId>\n"
                "</ErrorResponse>\n"
            ).encode()
            content_type = "text/xml"
        self.send_response(status)
        self.send_header("x-amzn-RequestId", request_id)
        if request.protocol == "json":
            self.send_header("x-amzn-ErrorType", code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if request.method != "HEAD":
            self.wfile.write(body)

    def handle_control(self):
        path = urlsplit(self.path).path[len(CONTROL_PREFIX):].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        state = self.state
        route = (self.command, path)

        if route in (("GET", "/health"), ("GET", "")):
            self.send_json(200, {"ok": True})
        elif route == ("GET", "/stats"):
            with state.lock:
                self.send_json(200, dict(state.stats))
        elif route == ("POST", "/reset"):
            with state.lock:
                state.stats.clear()
            self.send_json(200, {})
        elif route == ("GET", "/faults"):
            with state.lock:
                self.send_json(200, [dict(f) for f in state.faults])
        elif route == ("POST", "/faults"):
            try:
                fault = _parse_fault(body)
            except ValueError as error:
                self.send_json(400, {"error": str(error)})
                return
            with state.lock:
                state.faults.append(fault)
                self.send_json(200, [dict(f) for f in state.faults])
        elif route == ("DELETE", "/faults"):
            with state.lock:
                state.faults.clear()
            self.send_json(200, [])
        else:
            self.send_json(404, {"error": f"no control route {self.command} {CONTROL_PREFIX}{path}"})
        log.info("control %s %s", self.command, path)

    def send_json(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _refresh_ecr_expiry(body):
    """Set expiresAt of each ECR authorization token to 12 hours from now.

    moto 5 returns a fixed expiresAt in 2015, so every token would look
    expired. Real ECR tokens are valid for 12 hours.
    """
    result = json.loads(body)
    expires_at = time.time() + ECR_TOKEN_LIFETIME_SECONDS
    for item in result.get("authorizationData", []):
        item["expiresAt"] = expires_at
    return json.dumps(result).encode()


def _parse_fault(body):
    """Parse and check a fault from the control API, or raise ValueError."""
    try:
        value = json.loads(body or b"{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"fault body is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError("fault body must be a JSON object")
    action = value.get("action")
    status = value.get("status", 400)
    code = value.get("code")
    count = value.get("count", 1)
    message = value.get("message")
    if not isinstance(action, str) or not action:
        raise ValueError("fault 'action' is missing: give an action name such as GetSessionToken")
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"fault 'status' {status!r} is invalid: give an HTTP status from 400 to 599")
    if not isinstance(code, str) or not code:
        raise ValueError("fault 'code' is missing: give an AWS error code such as Throttling")
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"fault 'count' {count!r} is invalid: give a whole number of 1 or more")
    if message is not None and not isinstance(message, str):
        raise ValueError("fault 'message' must be a string")
    return {"action": action, "status": status, "code": code, "count": count, "message": message}


def _default_fault_message(code):
    return "Rate exceeded" if "throttl" in code.lower() else f"{code} injected by the stand-in"


def main():
    config_path, ready_path = sys.argv[1], sys.argv[2]
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    with open(config_path, encoding="utf-8") as file:
        config = json.load(file)

    # moto reads its account id from the environment on each request.
    os.environ["MOTO_ACCOUNT_ID"] = config["accountId"]
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    config["motoPort"] = moto.get_host_and_port()[1]

    GateHandler.state = GateState(config)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", config.get("port", 0)), GateHandler)
    server.daemon_threads = True
    port = server.server_address[1]

    # Written last and renamed, so the reader sees a complete file only once both servers listen.
    temporary = ready_path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump({"port": port, "motoPort": config["motoPort"]}, file)
    os.replace(temporary, ready_path)
    log.info("listening on 127.0.0.1:%d, moto on 127.0.0.1:%d", port, config["motoPort"])
    server.serve_forever()


if __name__ == "__main__":
    main()

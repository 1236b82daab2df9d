"""Start each stand-in service and wait until it answers.

Every start function appends the record of each process it spawns to
`started` at once, so a failed start can still be stopped, and returns the
part of standins.json that describes the service.
"""

import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import processes

HERE = os.path.dirname(os.path.abspath(__file__))

STS_READY_SECONDS = 60
REGISTRY_READY_SECONDS = 30
ENGINE_READY_SECONDS = 90

# sun_path in struct sockaddr_un holds 108 bytes, the final NUL included.
MAX_UNIX_SOCKET_PATH = 107

# containerd, started by dockerd, puts its sockets here below the exec root.
CONTAINERD_SOCKET_SUFFIX = "/exec/containerd/containerd.sock.ttrpc"


def start_sts(state_dir, settings, started):
    """Start the STS gate with moto inside it, on a free port."""
    work = os.path.join(state_dir, "sts")
    os.makedirs(work, exist_ok=True)
    config_path = os.path.join(work, "gate-config.json")
    ready_path = os.path.join(work, "ready.json")
    log_path = os.path.join(state_dir, "sts.log")
    if os.path.exists(ready_path):
        os.remove(ready_path)

    processes.write_private_json(
        config_path,
        {
            key: settings[key]
            for key in (
                "region",
                "accountId",
                "accessKeyId",
                "secretAccessKey",
                "wrongTokenCode",
                "serialNumber",
            )
        },
    )
    env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true", PYTHONUNBUFFERED="1")
    argv = [sys.executable, os.path.join(HERE, "sts_gate.py"), config_path, ready_path]
    process, start_time = processes.spawn(argv, log_path, env=env, cwd=work)
    started.append({"name": "sts", "pid": process.pid, "startTime": start_time})

    deadline = time.monotonic() + STS_READY_SECONDS
    ready = None
    while ready is None:
        _check_alive("sts", process, log_path)
        if os.path.exists(ready_path):
            with open(ready_path, encoding="utf-8") as file:
                ready = json.load(file)
        elif time.monotonic() > deadline:
            raise processes.StartError(
                "sts", f"gate did not start within {STS_READY_SECONDS}s", log_path
            )
        else:
            time.sleep(0.1)

    endpoint = f"http://127.0.0.1:{ready['port']}"
    _wait_http("sts", process, log_path, endpoint + "/_standin/health", {200}, deadline)
    return {"awsEndpoint": endpoint, "control": endpoint + "/_standin"}


def start_registry(state_dir, settings, tls, started):
    """Start docker-registry with htpasswd auth for AWS:<account>-auth-token."""
    work = os.path.join(state_dir, "registry")
    os.makedirs(os.path.join(work, "data"), exist_ok=True)
    log_path = os.path.join(state_dir, "registry.log")
    username = "AWS"
    password = f"{settings['accountId']}-auth-token"

    htpasswd_path = os.path.join(work, "htpasswd")
    line = subprocess.run(
        ["htpasswd", "-Bbn", username, password],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with open(htpasswd_path, "w", encoding="utf-8") as file:
        file.write(line + "\n")

    ca_file = _make_certificates(work) if tls else None
    scheme = "https" if tls else "http"

    # The port is picked before the registry binds it, so another process may
    # take it first. A few tries make that race harmless.
    last_error = None
    for _ in range(3):
        port = _free_port()
        config_path = os.path.join(work, "config.yml")
        with open(config_path, "w", encoding="utf-8") as file:
            file.write(_registry_config(work, port, htpasswd_path, tls))
        process, start_time = processes.spawn(
            ["docker-registry", "serve", config_path], log_path, cwd=work
        )
        record = {"name": "registry", "pid": process.pid, "startTime": start_time}
        started.append(record)
        url = f"{scheme}://127.0.0.1:{port}"
        deadline = time.monotonic() + REGISTRY_READY_SECONDS
        try:
            _wait_http("registry", process, log_path, url + "/v2/", {401}, deadline, ca_file)
        except processes.StartError as error:
            processes.stop(record, timeout=5)
            started.remove(record)
            last_error = error
            if "address already in use" not in processes.tail(log_path, 5):
                raise
            continue
        return {
            "host": f"127.0.0.1:{port}",
            "url": url,
            "username": username,
            "password": password,
            "caFile": ca_file,
        }
    raise last_error


def _registry_config(work, port, htpasswd_path, tls):
    # JSON is valid YAML, and json.dumps quotes every path safely.
    config = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {
            "filesystem": {"rootdirectory": os.path.join(work, "data")},
            "delete": {"enabled": True},
        },
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": base64.b64encode(os.urandom(24)).decode(),
        },
        "auth": {"htpasswd": {"realm": "ecr-stand-in", "path": htpasswd_path}},
    }
    if tls:
        config["http"]["tls"] = {
            "certificate": os.path.join(work, "server.crt"),
            "key": os.path.join(work, "server.key"),
        }
    return json.dumps(config, indent=2) + "\n"


def _make_certificates(work):
    """Make a CA and a server certificate for 127.0.0.1 and localhost; return the CA path."""
    ca_key = os.path.join(work, "ca.key")
    ca_cert = os.path.join(work, "ca.crt")
    server_key = os.path.join(work, "server.key")
    server_csr = os.path.join(work, "server.csr")
    server_cert = os.path.join(work, "server.crt")
    extensions = os.path.join(work, "server.ext")
    with open(extensions, "w", encoding="utf-8") as file:
        file.write(
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature, keyEncipherment\n"
            "extendedKeyUsage = serverAuth\n"
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        )
    ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        ["openssl", "req", "-x509", *ec_key, "-keyout", ca_key, "-out", ca_cert,
         "-days", "30", "-subj", "/CN=EcrCompose test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", *ec_key, "-keyout", server_key, "-out", server_csr,
         "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", server_csr, "-CA", ca_cert, "-CAkey", ca_key,
         "-CAcreateserial", "-out", server_cert, "-days", "30", "-extfile", extensions],
    ]
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise processes.StartError(
                "registry", f"openssl failed: {' '.join(command[:3])}: {result.stderr.strip()}"
            )
    return ca_cert


def start_engine(state_dir, started):
    """Start a private dockerd on a unix socket; never the system's daemon."""
    work = os.path.join(state_dir, "engine")
    os.makedirs(work, exist_ok=True)
    log_path = os.path.join(state_dir, "engine.log")

    # The socket and containerd's sockets under the exec root need short paths.
    run_dir = work
    short_dir = None
    if len(work + CONTAINERD_SOCKET_SUFFIX) > MAX_UNIX_SOCKET_PATH:
        short_dir = tempfile.mkdtemp(prefix="standin-engine-", dir="/tmp")
        run_dir = short_dir

    socket_path = os.path.join(run_dir, "docker.sock")
    data_root = os.path.join(work, "data")
    exec_root = os.path.join(run_dir, "exec")
    daemon_config = os.path.join(work, "daemon.json")
    with open(daemon_config, "w", encoding="utf-8") as file:
        file.write("{}\n")

    argv = [
        "dockerd",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--storage-driver=vfs",
        f"--config-file={daemon_config}",
        f"--host=unix://{socket_path}",
        f"--data-root={data_root}",
        f"--exec-root={exec_root}",
        f"--pidfile={os.path.join(run_dir, 'docker.pid')}",
    ]
    # NOTE: dockerd 20.10 uses a containerd that already listens on
    # /run/containerd/containerd.sock instead of starting its own.
    process, start_time = processes.spawn(argv, log_path, cwd=work)
    started.append(
        {
            "name": "engine",
            "pid": process.pid,
            "startTime": start_time,
            "mountRoots": [data_root, exec_root],
            "shortDir": short_dir,
        }
    )

    deadline = time.monotonic() + ENGINE_READY_SECONDS
    while True:
        _check_alive("engine", process, log_path)
        if ping_engine(socket_path):
            return {"host": f"unix://{socket_path}", "runDir": run_dir}
        if time.monotonic() > deadline:
            raise processes.StartError(
                "engine", f"dockerd did not answer _ping within {ENGINE_READY_SECONDS}s", log_path
            )
        time.sleep(0.2)


def ping_engine(socket_path, timeout=2):
    """True when the engine on socket_path answers GET /_ping with OK."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(timeout)
            client.connect(socket_path)
            client.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            response = b""
            while chunk := client.recv(4096):
                response += chunk
    except OSError:
        return False
    return response.startswith(b"HTTP/1.") and b" 200 " in response[:16] and response.endswith(b"OK")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _check_alive(service, process, log_path):
    code = process.poll()
    if code is not None:
        raise processes.StartError(service, f"process exited with status {code}", log_path)


def _wait_http(service, process, log_path, url, statuses, deadline, ca_file=None):
    """Poll url until it returns one of statuses, the process exits, or the deadline passes."""
    handlers = [urllib.request.ProxyHandler({})]
    if ca_file:
        context = ssl.create_default_context(cafile=ca_file)
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    last = "no answer"
    while True:
        _check_alive(service, process, log_path)
        try:
            with opener.open(url, timeout=2) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            status = None
            last = str(error)
        if status in statuses:
            return
        if status is not None:
            last = f"HTTP {status}"
        if time.monotonic() > deadline:
            raise processes.StartError(service, f"{url} did not answer in time ({last})", log_path)
        time.sleep(0.1)


def remove_short_dir(record):
    short_dir = record.get("shortDir")
    if short_dir and short_dir.startswith("/tmp/standin-engine-"):
        shutil.rmtree(short_dir, ignore_errors=True)

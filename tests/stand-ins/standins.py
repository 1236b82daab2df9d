#!/usr/bin/env python3
"""Start and stop the local stand-ins that EcrCompose tests run against.

  standins.py start --state DIR [--services sts,registry,engine]
                    [--wrong-token-code 999999] [--registry-tls]
  standins.py stop --state DIR

start launches each service detached, in its own process group, on
127.0.0.1 only, waits until it answers, writes DIR/standins.json and prints
the same JSON. stop ends what start recorded, and does nothing when nothing
runs. Logs are DIR/<service>.log.

Services:
  sts       moto behind the STS gate (sts_gate.py), which checks signatures,
            GetSessionToken parameters and the MFA code as the real STS does
  registry  Debian's docker-registry with htpasswd auth for the ECR password
            that moto returns (AWS / <account>-auth-token)
  engine    a private dockerd on a unix socket under DIR
"""

import argparse
import os
import re
import secrets
import string
import sys

# The helper modules stay free of __pycache__ folders in the source tree.
sys.dont_write_bytecode = True

import processes
import services

STATE_FILE = "standins.json"
ALL_SERVICES = ("sts", "registry", "engine")
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
STOP_TIMEOUT_SECONDS = {"engine": 20}
DEFAULT_STOP_TIMEOUT_SECONDS = 10


def main(argv=None):
    parser = argparse.ArgumentParser(description="Start and stop the EcrCompose test stand-ins.")
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser("start", help="start services and print their JSON description")
    start.add_argument("--state", required=True, help="directory for state, logs and standins.json")
    start.add_argument(
        "--services",
        default=",".join(ALL_SERVICES),
        help="comma-separated services to start (default: sts,registry,engine)",
    )
    start.add_argument(
        "--wrong-token-code",
        default="999999",
        help="six-digit MFA code that the STS gate rejects with AccessDenied (default: 999999)",
    )
    start.add_argument(
        "--registry-tls",
        action="store_true",
        help="serve the registry over https with a certificate from a new test CA",
    )

    stop = commands.add_parser("stop", help="stop the services recorded in the state directory")
    stop.add_argument("--state", required=True, help="directory given to start")

    args = parser.parse_args(argv)
    state_dir = os.path.abspath(args.state)
    if args.command == "start":
        return start_services(parser, state_dir, args)
    return stop_services(state_dir)


def start_services(parser, state_dir, args):
    wanted = [name.strip() for name in args.services.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(ALL_SERVICES))
    if unknown or not wanted:
        parser.error(
            f"--services {args.services!r} is invalid: choose from {','.join(ALL_SERVICES)}"
        )
    if not re.fullmatch(r"\d{6}", args.wrong_token_code):
        parser.error(
            f"--wrong-token-code {args.wrong_token_code!r} is invalid: give exactly 6 digits"
        )

    os.makedirs(state_dir, exist_ok=True)
    running = [record for record in processes.load_records(state_dir) if processes.is_ours(record)]
    if running:
        pids = ", ".join(f"{r['name']} {r['pid']}" for r in running)
        print(
            f"standins: services already run from {state_dir} ({pids}): run stop first",
            file=sys.stderr,
        )
        return 1

    description = _describe_account(state_dir, args.wrong_token_code)
    started = []
    current = None
    try:
        for name in ALL_SERVICES:
            if name not in wanted:
                continue
            current = name
            if name == "sts":
                description.update(services.start_sts(state_dir, description, started))
            elif name == "registry":
                description["registry"] = services.start_registry(
                    state_dir, description, args.registry_tls, started
                )
            else:
                description["engine"] = services.start_engine(state_dir, started)
            processes.save_records(state_dir, started)
            description["logs"][name] = os.path.join(state_dir, f"{name}.log")
    except BaseException as error:
        processes.save_records(state_dir, started)
        _stop_records(state_dir, started, quiet=True)
        log = getattr(error, "log", None) or os.path.join(state_dir, f"{current}.log")
        reason = str(error) or type(error).__name__
        print(f"standins: start failed: {current}: {reason}", file=sys.stderr)
        print(f"--- last lines of {log} ---", file=sys.stderr)
        print(processes.tail(log), end="", file=sys.stderr)
        return 1

    description["pids"] = {record["name"]: record["pid"] for record in started}
    path = os.path.join(state_dir, STATE_FILE)
    processes.write_private_json(path, description)
    with open(path, encoding="utf-8") as file:
        sys.stdout.write(file.read())
    return 0


def _describe_account(state_dir, wrong_token_code):
    """Build the account part of standins.json, and the empty files and folders that AWS,
    Docker and cache code under test use in place of the user's."""
    aws_dir = os.path.join(state_dir, "aws")
    docker_config = os.path.join(state_dir, "docker-config")
    cache_dir = os.path.join(state_dir, "cache")
    for directory in (aws_dir, docker_config, cache_dir):
        os.makedirs(directory, exist_ok=True)
    config_file = os.path.join(aws_dir, "config")
    credentials_file = os.path.join(aws_dir, "credentials")
    for path in (config_file, credentials_file):
        open(path, "w", encoding="utf-8").close()

    # Shaped like real IAM user keys: AKIA plus 16 base32 characters, and a
    # 40-character secret. New ones each start, so no test can depend on them.
    key_alphabet = string.ascii_uppercase + "234567"
    secret_alphabet = string.ascii_letters + string.digits + "/+"
    return {
        "awsEndpoint": None,
        "region": REGION,
        "accountId": ACCOUNT_ID,
        "accessKeyId": "AKIA" + "".join(secrets.choice(key_alphabet) for _ in range(16)),
        "secretAccessKey": "".join(secrets.choice(secret_alphabet) for _ in range(40)),
        "wrongTokenCode": wrong_token_code,
        "serialNumber": f"arn:aws:iam::{ACCOUNT_ID}:mfa/developer",
        "control": None,
        "registry": None,
        "engine": None,
        "stateDir": state_dir,
        "awsConfigFile": config_file,
        "awsSharedCredentialsFile": credentials_file,
        "dockerConfig": docker_config,
        "cacheDir": cache_dir,
        "pids": {},
        "logs": {},
    }


def stop_services(state_dir):
    records = processes.load_records(state_dir)
    if not records:
        print(f"standins: nothing runs from {state_dir}")
        return 0
    _stop_records(state_dir, records, quiet=False)
    return 0


def _stop_records(state_dir, records, quiet):
    for record in reversed(records):
        timeout = STOP_TIMEOUT_SECONDS.get(record["name"], DEFAULT_STOP_TIMEOUT_SECONDS)
        outcome = processes.stop(record, timeout)
        if record["name"] == "engine":
            left = processes.unmount_under(record["mountRoots"])
            if left:
                outcome += f", unmounted {len(left)} leftover mounts"
            services.remove_short_dir(record)
        if not quiet:
            print(f"standins: {record['name']} (pid {record['pid']}) {outcome}")
    path = os.path.join(state_dir, processes.PROCESSES_FILE)
    if os.path.exists(path):
        os.remove(path)


if __name__ == "__main__":
    sys.exit(main())

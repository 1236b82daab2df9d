"""Start detached service processes and stop them again by pid."""

import json
import os
import signal
import subprocess
import time

PROCESSES_FILE = "processes.json"


class StartError(Exception):
    """A service that did not start; `log` is the path of its log file."""

    def __init__(self, service, message, log=None):
        super().__init__(f"{service}: {message}")
        self.service = service
        self.log = log


def spawn(argv, log_path, env=None, cwd=None):
    """Start argv in its own session and process group, output appended to log_path.

    Returns (pid, start_time). The start time (clock ticks since boot, from
    /proc/PID/stat) tells a later stop whether the pid still names this process.
    """
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    return process, start_time(process.pid)


def start_time(pid):
    """Return the start time of a process in clock ticks since boot, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as file:
            stat = file.read()
    except OSError:
        return None
    # The command name in field 2 may contain spaces, so count fields after its ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def is_ours(record):
    """True when the recorded pid is alive and still the process we started."""
    return start_time(record["pid"]) == record["startTime"]


def group_members(pgid):
    """Return the pids whose process group is pgid."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def stop(record, timeout):
    """Send SIGTERM to one recorded process, then SIGKILL to its group after timeout seconds.

    A pid that now belongs to another process is left alone. Returns a short
    description of what happened, for the stop output.
    """
    pid = record["pid"]
    if is_ours(record):
        _signal(pid, signal.SIGTERM)
        if _wait_gone(record, timeout):
            outcome = "stopped"
        else:
            _signal_group(pid, signal.SIGKILL)
            _wait_gone(record, 5)
            outcome = f"killed after {timeout}s"
    else:
        outcome = "already gone"

    # Children left behind, such as the containerd that dockerd starts, stay in
    # the group. A pgid cannot be handed to a new process while its group has
    # members, so these are still ours.
    if group_members(pid):
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while group_members(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if group_members(pid):
            _signal_group(pid, signal.SIGKILL)
    return outcome


def _wait_gone(record, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_ours(record) or _is_zombie(record["pid"]):
            return True
        time.sleep(0.1)
    return False


def _is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as file:
            return file.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _signal(pid, number):
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


def _signal_group(pgid, number):
    try:
        os.killpg(pgid, number)
    except ProcessLookupError:
        pass


def load_records(state_dir):
    path = os.path.join(state_dir, PROCESSES_FILE)
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except FileNotFoundError:
        return []


def save_records(state_dir, records):
    path = os.path.join(state_dir, PROCESSES_FILE)
    write_private_json(path, records)


def write_private_json(path, value):
    """Write JSON readable by the owner only, through a temporary file and a rename."""
    temporary = path + ".tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(value, file, indent=2)
        file.write("\n")
    os.replace(temporary, path)


def unmount_under(roots):
    """Lazily unmount every mount point below the given directories, deepest first."""
    roots = [os.path.realpath(root) for root in roots]
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as file:
        for line in file:
            point = _unescape_mount_path(line.split()[4])
            if any(point == root or point.startswith(root + "/") for root in roots):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    return points


def _unescape_mount_path(text):
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(escaped, plain)
    return text


def tail(path, lines=30):
    """Return the last lines of a log file, or a note when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return "".join(file.readlines()[-lines:])
    except OSError as error:
        return f"(log {path} could not be read: {error})\n"

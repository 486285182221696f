#!/usr/bin/env python3
"""meson_heartbeat.py SECONDS BUILD_DIR COMMAND...: run `meson test` (COMMAND) so that a log
shows it is alive. On a terminal meson draws its own line of running tests, so COMMAND runs
as it is. Elsewhere (CI logs, a pipe) meson prints a line only when a test ends, and one slow
test leaves minutes of silence; there every SECONDS without a line, one line says how far the
run is and which tests run, each with its time so far and its time in the previous run of
BUILD_DIR (meson-logs/testlog.json), e.g.
    meson test: 41 of 64 done after 7:12; running attn_slow_d256 (2:05 of 3:43 last time)
Exits with COMMAND's status."""
import json
import os
import re
import select
import subprocess
import sys
import time


def clock(s):
    s = int(s + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def previous_durations(build):
    """Test name -> seconds in the last run ({} when there was none)."""
    times = {}
    try:
        with open(os.path.join(build, "meson-logs", "testlog.json")) as f:
            for line in f:
                r = json.loads(line)
                times[r["name"].rsplit(" / ", 1)[-1]] = r["duration"]
    except (OSError, ValueError, KeyError):
        pass
    return times


def test_table(build):
    """(name, command line, CK_RUN_CASE or None) of every test meson knows."""
    try:
        out = subprocess.run(["meson", "introspect", "--tests", build], capture_output=True,
                             text=True, check=True).stdout
        return [(t["name"], t["cmd"], t.get("env", {}).get("CK_RUN_CASE"))
                for t in json.loads(out) if t.get("cmd")]
    except (OSError, subprocess.CalledProcessError, ValueError):
        return []


def children(pid):
    """The processes whose parent is pid: (pid, argv, environ, start in seconds since boot)."""
    hz = os.sysconf("SC_CLK_TCK")
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            if int(stat[1]) != pid:
                continue
            with open(f"/proc/{p}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            try:
                with open(f"/proc/{p}/environ", "rb") as f:
                    env = dict(e.decode(errors="replace").split("=", 1)
                               for e in f.read().split(b"\0") if b"=" in e)
            except OSError:
                env = {}
            found.append((int(p), argv, env, int(stat[19]) / hz))
        except (OSError, IndexError, ValueError):
            continue
    return found


def running(pid, table):
    """(name, seconds so far) of the tests meson (pid) runs now."""
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    tests = []
    for _, argv, env, start in children(pid):
        # A script runs under its interpreter, a test setup under its wrapper: the command
        # line is the tail of argv.
        name = next((n for n, cmd, case in table
                     if argv[-len(cmd):] == cmd and case == env.get("CK_RUN_CASE")), None)
        tests.append((name or os.path.basename(argv[1 if len(argv) > 1 and
                                                     argv[0].endswith("sh") else 0]),
                      uptime - start))
    return sorted(tests, key=lambda t: -t[1])


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: meson_heartbeat.py SECONDS BUILD_DIR COMMAND...")
    every, build, cmd = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
    if os.isatty(1):
        os.execvp(cmd[0], cmd)
    before = previous_durations(build)
    table = test_table(build)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    fd, done, total, pending, last = proc.stdout.fileno(), 0, None, b"", time.monotonic()
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, every - (time.monotonic() - last)))
        if ready:
            data = os.read(fd, 65536)
            if not data:
                break
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                m = re.match(rb"\s*(\d+)/(\d+) ", line)
                if m:
                    done, total = int(m.group(1)), int(m.group(2))
            last = time.monotonic()
        elif time.monotonic() - last >= every:
            now = running(proc.pid, table)
            names = ", ".join(
                f"{n} ({clock(s)}" + (f" of {clock(before[n])} last time)" if n in before
                                      else ")") for n, s in now)
            count = f"{done} of {total} done" if total else "none done yet"
            print(f"meson test: {count} after {clock(time.monotonic() - t0)}; "
                  + (f"running {names}" if now else "no test running"), flush=True)
            last = time.monotonic()
    sys.exit(proc.wait())


if __name__ == "__main__":
    main()

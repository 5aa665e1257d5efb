#!/usr/bin/env python3
"""trapeze benchmarks. Reports medians over repeated runs, and ratios to a baseline.

    python3 bench/run.py [--build build] [--repeat 5] [start respawn idle rss stream bus ready juju hooks load ...]

Needs a build (./dev test, or cmake --build build) with bench/spawn_baseline. Uses only the
Python standard library. Nothing here is a test: on a shared machine the figures move; compare
medians and ratios, not single runs.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Arbiter:
    """`trapeze run` on a config in a temporary directory, with its events file."""

    def __init__(self, trapeze, config_text, name="bench.ini"):
        self.dir = tempfile.mkdtemp(prefix="trapeze-bench-")
        self.config = os.path.join(self.dir, name)
        self.events_path = os.path.join(self.dir, "events.jsonl")
        with open(self.config, "w") as f:
            f.write(config_text)
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            [trapeze, "run", self.config, "--events-file", self.events_path,
             "--pidfile", os.path.join(self.dir, "pid"), "--log-output", os.path.join(self.dir, "log"),
             "--log-level", "warning"])
        self._offset = 0
        self._events = []

    def events(self):
        try:
            with open(self.events_path) as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return self._events
        end = data.rfind("\n")
        if end >= 0:
            for line in data[:end].splitlines():
                self._events.append(json.loads(line))
            self._offset += len(data[:end + 1].encode())
        return self._events

    def wait(self, pred, timeout=120):
        deadline = time.time() + timeout
        while True:
            ev = self.events()
            found = pred(ev)
            if found:
                return found
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("timed out waiting; see " + self.dir)
            time.sleep(0.0005)

    def count(self, suffix):
        return sum(1 for e in self.events() if e["topic"].endswith(suffix))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)


def median(xs):
    return statistics.median(xs)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def bench_start(args):
    n = 1000
    ours, base = [], []
    for _ in range(args.repeat):
        a = Arbiter(args.trapeze, f"[watcher:s]\ncmd = /bin/sleep\nargs = 1000\nnumprocesses = {n}\n")
        spawns = a.wait(lambda ev: [e for e in ev if e["topic"] == "watcher.s.spawn"][n - 1:] or None)
        ours.append(spawns[0]["data"]["time"] - a.started_at)
        a.stop()
        out = subprocess.run([args.baseline, str(n)], capture_output=True, text=True, check=True)
        base.append(float(out.stdout))
    print(f"start {n} sleeps: trapeze run -> all alive: median {median(ours)*1000:.1f} ms "
          f"(runs: {', '.join(f'{x*1000:.0f}' for x in ours)})")
    print(f"  baseline posix_spawn loop: median {median(base)*1000:.1f} ms; ratio {median(ours)/median(base):.2f}x "
          f"(target <= 1.5x)")


def bench_respawn(args):
    kills = 100
    a = Arbiter(args.trapeze, "[watcher:r]\ncmd = /bin/sleep\nargs = 1000\nmin_uptime = 0.01\n"
                              "check_flapping = false\n")
    a.wait(lambda ev: any(e["topic"] == "watcher.r.start" for e in ev))
    latencies = []
    for _ in range(kills):
        spawns = [e for e in a.events() if e["topic"] == "watcher.r.spawn"]
        pid, seen = spawns[-1]["data"]["process_pid"], len(spawns)
        time.sleep(0.03)  # longer than min_uptime: the replacement is due at once
        t0 = time.time()
        os.kill(pid, signal.SIGKILL)
        new = a.wait(lambda ev: [e for e in ev if e["topic"] == "watcher.r.spawn"][seen:] or None)
        latencies.append(new[0]["data"]["time"] - t0)
    a.stop()
    ms = [x * 1000 for x in latencies]
    print(f"respawn latency over {kills} SIGKILLs: p50 {pct(ms, 50):.3f} ms, p99 {pct(ms, 99):.3f} ms, "
          f"max {max(ms):.3f} ms (targets: p50 < 1 ms, p99 < 5 ms)")


def cpu_ns(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


def switches(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def bench_idle(args):
    seconds = args.idle_seconds
    used, wakes = [], []
    for _ in range(max(1, args.repeat // 2)):
        a = Arbiter(args.trapeze, "[watcher:i]\ncmd = /bin/sleep\nargs = 100000\nnumprocesses = 100\n")
        a.wait(lambda ev: any(e["topic"] == "watcher.i.start" for e in ev))
        time.sleep(0.5)
        c0, s0 = cpu_ns(a.proc.pid), switches(a.proc.pid)
        time.sleep(seconds)
        used.append((cpu_ns(a.proc.pid) - c0) / 1e6)
        wakes.append(switches(a.proc.pid) - s0)
        a.stop()
    print(f"idle with 100 processes for {seconds} s: CPU median {median(used):.3f} ms, context switches "
          f"median {median(wakes)} (runs: {used}) (target < 10 ms)")


def bench_rss(args):
    n = 1000
    rss = []
    for _ in range(max(1, args.repeat // 2)):
        a = Arbiter(args.trapeze, f"[watcher:m]\ncmd = /bin/sleep\nargs = 1000\nnumprocesses = {n}\n")
        a.wait(lambda ev: any(e["topic"] == "watcher.m.start" for e in ev))
        with open(f"/proc/{a.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    rss.append(int(line.split()[1]) / 1024)
        a.stop()
    print(f"RSS with {n} processes: median {median(rss):.1f} MiB (runs: {rss}) (target < 16 MiB)")


def bench_stream(args):
    size = 200 * 1000 * 1000
    work = tempfile.mkdtemp(prefix="trapeze-stream-")
    big = os.path.join(work, "big")
    line = b"y" * 99 + b"\n"
    with open(big, "wb") as f:
        block = line * 10000
        for _ in range(size // len(block)):
            f.write(block)
    ours, base, piped = [], [], []
    for r in range(args.repeat):
        out = os.path.join(work, f"cat{r}.out")
        t0 = time.time()
        with open(out, "wb") as f:
            subprocess.run(["cat", big], stdout=f, check=True)
        base.append(time.time() - t0)
        os.unlink(out)
        # The same bytes through a pipe, as any supervisor must take them: cat | cat > file.
        t0 = time.time()
        subprocess.run(f"cat {big} | cat > {out}", shell=True, check=True)
        piped.append(time.time() - t0)
        os.unlink(out)
        out = os.path.join(work, f"trapeze{r}.out")
        a = Arbiter(args.trapeze, f"[watcher:c]\ncmd = cat\nargs = {big}\nrespawn = false\n"
                                  f"stdout_stream.class = FileStream\nstdout_stream.filename = {out}\n")
        ev = a.wait(lambda ev: [e for e in ev if e["topic"] == "watcher.c.reap"] or None)
        spawn = [e for e in a.events() if e["topic"] == "watcher.c.spawn"][0]
        ours.append(ev[0]["data"]["time"] - spawn["data"]["time"])
        a.stop()
        assert os.path.getsize(out) == size, "bytes were lost"
        os.unlink(out)
    shutil.rmtree(work, ignore_errors=True)
    mbps = lambda t: size / t / 1e6
    print(f"stream 200 MB to a FileStream: trapeze median {mbps(median(ours)):.0f} MB/s, cat > file median "
          f"{mbps(median(base)):.0f} MB/s; trapeze at {median(base)/median(ours)*100:.0f}% of cat (target >= 80%)")
    print(f"  through a pipe (cat | cat > file) median {mbps(median(piped)):.0f} MB/s; trapeze at "
          f"{median(piped)/median(ours)*100:.0f}% of that")


def bench_bus(args):
    requests, kills = 1000, 100
    trips, reaps = [], []
    for _ in range(max(1, args.repeat // 2)):
        work = tempfile.mkdtemp(prefix="trapeze-bus-")
        control, events = f"ipc://{work}/control", f"ipc://{work}/events"
        a = Arbiter(args.trapeze, f"[circus]\nendpoint = {control}\npubsub_endpoint = {events}\n"
                                  "[watcher:b]\ncmd = /bin/sleep\nargs = 1000\nnumprocesses = 2\n"
                                  "min_uptime = 0\ncheck_flapping = false\n")
        a.wait(lambda ev: any(e["topic"] == "watcher.b.start" for e in ev))
        out = subprocess.run([args.bus_bench, control, events, "b", str(requests), str(kills)],
                             capture_output=True, text=True, check=True)
        a.stop()
        shutil.rmtree(work, ignore_errors=True)
        figures = json.loads(out.stdout)
        trips.append(median(figures["round_trip_us"]))
        reaps.append((pct(figures["kill_to_reap_us"], 50), pct(figures["kill_to_reap_us"], 99)))
    print(f"control round trip (status, raw DEALER, {requests} requests a run): median of run medians "
          f"{median(trips):.1f} us (runs: {', '.join(f'{x:.0f}' for x in trips)}) (target < 200 us)")
    print(f"SIGKILL to reap event at a subscriber ({kills} kills a run): p50 {median(r[0] for r in reaps):.0f} us, "
          f"p99 {median(r[1] for r in reaps):.0f} us, medians of runs (target p50 < 1000 us)")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def bench_ready(args):
    """Workload ready (its own timestamp) -> the process's ready event at a subscriber."""
    starts = 50
    child = os.path.join(args.build, "tests", "integration", "test_child")
    for method in ["log", "notify", "notification_fd", "tcp", "http", "exec"]:
        work = tempfile.mkdtemp(prefix="trapeze-ready-")
        stamp = os.path.join(work, "stamp")
        port = free_port()
        flag = os.path.join(work, "flag")
        ready, action = {
            "log": ("ready.log = ^up$", f"stamp {stamp} print up forever"),
            "notify": ("ready.notify = true", f"stamp {stamp} notify READY=1 forever"),
            "notification_fd": ("ready.notification_fd = 5", f"stamp {stamp} readyfd 5 forever"),
            "tcp": (f"ready.tcp = 127.0.0.1:{port}\nready.interval = 50ms", f"stamp {stamp} serve {port}"),
            "http": (f"ready.http = http://127.0.0.1:{port}/\nready.interval = 50ms", f"stamp {stamp} serve {port}"),
            "exec": (f"ready.exec = test -e {stamp}\nready.interval = 50ms", f"sleep 20 stamp {stamp} forever"),
        }[method]
        control = f"ipc://{work}/control"
        a = Arbiter(args.trapeze, f"[circus]\nendpoint = {control}\npubsub_endpoint = ipc://{work}/events\n"
                                  f"[watcher:r]\ncmd = {child}\nargs = {action}\n{ready}\n"
                                  "check_flapping = false\nmin_uptime = 0\ngraceful_timeout = 5\n")
        a.wait(lambda ev: any(e["topic"] == "watcher.r.start" for e in ev))
        listen = subprocess.Popen([args.trapeze, "--endpoint", control, "listen", "--json", "watcher.r."],
                                  stdout=subprocess.PIPE, text=True, bufsize=1)
        # Live once it sees an event we caused.
        while True:
            subprocess.run([args.trapeze, "--endpoint", control, "reloadconfig"], capture_output=True)
            subprocess.run([args.trapeze, "--endpoint", control, "incr", "r"], capture_output=True)
            subprocess.run([args.trapeze, "--endpoint", control, "decr", "r"], capture_output=True)
            line = listen.stdout.readline()
            if line:
                break
        latencies = []
        for _ in range(starts):
            if os.path.exists(stamp):
                os.unlink(stamp)
            subprocess.run([args.trapeze, "--endpoint", control, "kill", "r"], capture_output=True, check=True)
            while True:
                line = listen.stdout.readline()
                got = time.time()
                e = json.loads(line)
                if e["topic"] == "watcher.r.ready" and "process_pid" in e["data"] and os.path.exists(stamp):
                    break
            with open(stamp) as f:
                latencies.append((got - float(f.read())) * 1000)
        listen.kill()
        listen.wait()
        a.stop()
        shutil.rmtree(work, ignore_errors=True)
        print(f"ready latency, {method}: p50 {pct(latencies, 50):.2f} ms, p99 {pct(latencies, 99):.2f} ms "
              f"over {starts} starts")
        sys.stdout.flush()


def bench_juju(args):
    """Workload ready (its own timestamp, as it logs its ready line) -> the charm's dispatch starting."""
    runs = 50
    child = os.path.join(args.build, "tests", "integration", "test_child")
    work = tempfile.mkdtemp(prefix="trapeze-juju-")
    charm = os.path.join(work, "charm")
    os.makedirs(charm)
    shutil.copy(os.path.join(args.build, "bench", "stamp_dispatch"), os.path.join(charm, "dispatch"))
    ready_stamp, dispatch_stamp = os.path.join(work, "ready"), os.path.join(work, "dispatched")
    os.environ["STAMP_FILE"] = dispatch_stamp
    control = f"ipc://{work}/control"
    a = Arbiter(args.trapeze, f"[circus]\nendpoint = {control}\npubsub_endpoint = ipc://{work}/events\n"
                              f"[juju]\nunit = bench/0\ncharm_dir = {charm}\nmode = direct\n"
                              f"queue_file = {work}/queue.json\n"
                              f"[watcher:w]\ncmd = {child}\nargs = stamp {ready_stamp} print up forever\n"
                              "ready.log = ^up$\n")
    latencies = []
    for i in range(runs + 1):
        a.wait(lambda ev: sum(1 for e in ev if e["topic"] == "juju.dispatch_success") >= i + 1)
        with open(ready_stamp) as f:
            ready = float(f.read())
        with open(dispatch_stamp) as f:
            dispatched = float(f.read().split()[-1])
        if i > 0:  # the first start includes the arbiter's own start
            latencies.append((dispatched - ready) * 1000)
        if i < runs:
            subprocess.run([args.trapeze, "--endpoint", control, "restart", "w"], capture_output=True, check=True)
    a.stop()
    shutil.rmtree(work, ignore_errors=True)
    print(f"workload ready -> charm dispatch started (direct mode, ready.log): p50 {pct(latencies, 50):.2f} ms, "
          f"p99 {pct(latencies, 99):.2f} ms over {runs} runs (target p99 < 20 ms)")


def bench_hooks(args):
    """A hook that does nothing, called in the arbiter and with isolate = true (a hook host)."""
    plugin = os.path.join(args.build, "bench", "bench_hook_plugin.so")
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run([os.path.join(args.build, "bench", "hook_bench"), args.trapeze, plugin, "200"],
                             capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out))
    in_process = median([r["in_process_p50_ms"] for r in runs])
    isolated = median([r["isolated_p50_ms"] for r in runs])
    isolated_p99 = median([r["isolated_p99_ms"] for r in runs])
    print(f"hook call, in the arbiter: p50 {in_process * 1000:.1f} us; isolated (a host per call): "
          f"p50 {isolated:.2f} ms, p99 {isolated_p99:.2f} ms; ratio {isolated / in_process:.0f}x "
          f"(medians of {args.repeat} runs of 200 calls)")


def bench_load(args):
    """10 control clients x 10000 commands (status, list, stats) while 200 processes crash-loop."""
    clients, commands = 10, 10000
    child = os.path.join(args.build, "tests", "integration", "test_child")
    runs = []
    for _ in range(max(1, args.repeat // 2)):
        work = tempfile.mkdtemp(prefix="trapeze-load-")
        control = f"ipc://{work}/control"
        a = Arbiter(args.trapeze, f"[circus]\nendpoint = {control}\npubsub_endpoint = ipc://{work}/events\n"
                                  f"[watcher:crash]\ncmd = {child}\nargs = sleep 50 exit 1\nnumprocesses = 200\n"
                                  "min_uptime = 0\ncheck_flapping = false\n"
                                  f"[watcher:steady]\ncmd = {child}\nargs = forever\nnumprocesses = 2\n")
        a.wait(lambda ev: any(e["topic"] == "watcher.steady.start" for e in ev)
               and a.count("crash.reap") >= 200)
        reaps_before = a.count("crash.reap")
        out = subprocess.run([args.load_bench, control, str(clients), str(commands), "crash", "steady"],
                             capture_output=True, text=True)
        reaps = a.count("crash.reap") - reaps_before
        a.stop()
        shutil.rmtree(work, ignore_errors=True)
        figures = json.loads(out.stdout)
        us = figures["round_trip_us"]
        runs.append((figures["sent"], figures["answered"], pct(us, 50), pct(us, 99), figures["seconds"],
                     reaps / figures["seconds"]))
    sent, answered = sum(r[0] for r in runs), sum(r[1] for r in runs)
    print(f"control under load ({clients} clients x {commands} commands, 200 processes crash-looping): "
          f"{answered} of {sent} answered; p50 {median(r[2] for r in runs) / 1000:.2f} ms, "
          f"p99 {median(r[3] for r in runs) / 1000:.2f} ms, medians of {len(runs)} runs "
          f"(runs: {', '.join(f'{r[2] / 1000:.2f}/{r[3] / 1000:.2f}' for r in runs)}); "
          f"{median(r[5] for r in runs):.0f} crash reaps/s meanwhile")


BENCHES = {"start": bench_start, "respawn": bench_respawn, "idle": bench_idle, "rss": bench_rss,
           "stream": bench_stream, "bus": bench_bus,
           "ready": bench_ready, "juju": bench_juju, "hooks": bench_hooks, "load": bench_load}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(TOP, "build"))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--idle-seconds", type=float, default=20)
    p.add_argument("which", nargs="*", default=list(BENCHES))
    args = p.parse_args()
    args.trapeze = os.path.join(args.build, "arbiter", "trapeze")
    args.baseline = os.path.join(args.build, "bench", "spawn_baseline")
    args.bus_bench = os.path.join(args.build, "bench", "bus_bench")
    args.load_bench = os.path.join(args.build, "bench", "load_bench")
    for name in args.which:
        BENCHES[name](args)
        sys.stdout.flush()


if __name__ == "__main__":
    main()

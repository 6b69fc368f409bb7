#!/usr/bin/env python3
"""bench_relay.py RSEQTRACE EXAMPLE [--threads T] [--events N | --rate E --duration S] [--runs R]

Consumer CPU of `rseqtrace record` per recorded event, writing the trace locally and sending it
to a stock lttng-relayd (not live, and live with two live timers), side by side on this machine.

Each run records `EXAMPLE T N` (T workers emitting N events each as fast as they can; default
2 workers, 1000000 events), or with --rate, `EXAMPLE T --duration S --rate E` (E events per second
per worker for S seconds, default 3: a load the recorder keeps up with). The
recorder's own CPU time (utime + stime of the rseqtrace process alone, read from
/proc/PID/stat once it has exited and before it is reaped: the traced program's time is not in
it) is divided by the events the summary line says were recorded. The relay daemon is started
by this script on free loopback ports with its own output directory, and stopped by its PID.

Prints one line per variant:
  relay_bench: variant=<name> consumer_ns_per_event=<median> recorded=<median> lost=<median> runs=<R>
then the goal verdict: each relay variant's figure at most 1.2 x the local one.
Exit status 1 when a run failed.
"""
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TICK_NS = 1e9 / os.sysconf('SC_CLK_TCK')


def free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(('127.0.0.1', 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def own_cpu_ns_at_exit(process, timeout=300):
    """utime + stime of `process` itself, read while it is a zombie (exited, not reaped); None
    when it has not exited within `timeout` seconds (it is then killed)."""
    last = None
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            sys.stderr.write(f'bench_relay: pid {process.pid} still runs {timeout} s after it started: killed\n')
            process.kill()
            return None
        try:
            with open(f'/proc/{process.pid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            break
        last = (int(fields[11]) + int(fields[12])) * TICK_NS
        if fields[0] == 'Z':
            break
        time.sleep(0.005)
    return last


def run_once(rseqtrace, example, workload, extra, workdir):
    output = os.path.join(workdir, 'local')
    shutil.rmtree(output, ignore_errors=True)
    arguments = [rseqtrace, 'record'] + extra(output) + ['--', example] + workload
    # Output to files, not pipes: nobody reads a pipe while the recorder runs, and a full one would
    # block it before it exits.
    with open(os.path.join(workdir, 'stdout'), 'w+') as out_file, open(os.path.join(workdir, 'stderr'), 'w+') as err_file:
        process = subprocess.Popen(arguments, stdout=out_file, stderr=err_file, text=True)
        cpu = own_cpu_ns_at_exit(process)
        process.wait(timeout=60)
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    summary = re.search(r'summary: recorded=(\d+) lost=(\d+)', out)
    if process.returncode != 0 or not summary or cpu is None:
        sys.stderr.write(f'bench_relay: {" ".join(arguments)} failed (status {process.returncode}):\n{out}{err}\n')
        return None
    shutil.rmtree(output, ignore_errors=True)
    return cpu, int(summary.group(1)), int(summary.group(2))


def rate_events(options, events):
    """Events one worker emits in a run: --rate x --duration, or --events."""
    if '--rate' in options:
        return int(float(options['--rate']) * float(options.get('--duration', '3')))
    return events


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    rseqtrace, example = sys.argv[1], sys.argv[2]
    options = dict(zip(sys.argv[3::2], sys.argv[4::2]))
    threads = int(options.get('--threads', 2))
    events = int(options.get('--events', 1000000))
    workload = [str(threads), str(events)]
    if '--rate' in options:
        workload = [str(threads), '--duration', options.get('--duration', '3'), '--rate', options['--rate']]
    runs = int(options.get('--runs', 3))
    workdir = tempfile.mkdtemp(prefix='rseqtrace-bench-relay-')
    control, data, live = free_ports(3)
    relayd = subprocess.Popen(['lttng-relayd', '-o', os.path.join(workdir, 'relayd'),
                               '-C', f'tcp://127.0.0.1:{control}', '-D', f'tcp://127.0.0.1:{data}',
                               '-L', f'tcp://127.0.0.1:{live}'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f'net://127.0.0.1:{control}:{data}'
    failed = False
    try:
        for _ in range(200):
            try:
                socket.create_connection(('127.0.0.1', control), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        variants = [
            ('local', lambda output: ['--output', output]),
            ('relayd_not_live', lambda output: ['--relayd', url, '--live-timer-ms', '0']),
            ('relayd_live_1000ms', lambda output: ['--relayd', url, '--live-timer-ms', '1000']),
            ('relayd_live_200ms', lambda output: ['--relayd', url, '--live-timer-ms', '200']),
        ]
        figures = {}
        for name, extra in variants:
            results = []
            for _ in range(runs):
                result = run_once(rseqtrace, example, workload, extra, workdir)
                if result is None:
                    failed = True
                    break
                results.append(result)
            if not results:
                continue
            per_event = statistics.median(cpu / max(1, recorded) for cpu, recorded, _ in results)
            figures[name] = per_event
            print(f'relay_bench: variant={name} consumer_ns_per_event={per_event:.1f} '
                  f'recorded={int(statistics.median(r for _, r, _ in results))} '
                  f'lost={int(statistics.median(l for _, _, l in results))} runs={len(results)}', flush=True)
        local = figures.get('local')
        if local:
            ratios = {name: figures[name] / local for name in figures if name != 'local'}
            if ratios:
                worst = max(ratios.values())
                listed = ', '.join(f'{name} {ratio:.2f}x' for name, ratio in ratios.items())
                print(f"goal: sending to lttng-relayd costs record at most 1.2 x its CPU per event writing locally "
                      f"({listed}; local {local:.1f} ns; one clock tick is {TICK_NS / max(1, threads * rate_events(options, events)):.1f} ns "
                      f"per event): {'met' if worst <= 1.2 else 'not met'}", flush=True)
    finally:
        relayd.terminate()
        try:
            relayd.wait(timeout=10)
        except subprocess.TimeoutExpired:
            relayd.kill()
            relayd.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

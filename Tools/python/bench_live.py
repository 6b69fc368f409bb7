#!/usr/bin/env python3
"""bench_live.py RSEQTRACE EXAMPLE WORKDIR [--quick] (run by Tools/bench before the main run).

Live-tracing figures, measured side by side in one run on this machine:
  - idle cost: two copies of the example program (rseqtrace-example 1 --duration D --rate 200)
    run at once for the idle window, one as is (its control thread listening) and one with
    RSEQTRACE_CONTROL=off; nobody attaches. Reported: the control thread's CPU time (utime +
    stime of the task named rseqtrace-ctl, from /proc/PID/task/TID/stat) and each process's whole
    CPU time over the window (the same work, with and without the control thread).
  - attach latency: `rseqtrace attach PID --duration 0.3` on a running example, five times; the
    median and maximum of the `first_event_ms` of its `process` line (from the start of the
    attach to the first drained event).
Prints one line:
  live: idle_seconds=<s> control_thread_cpu_ms=<x> process_cpu_ms=<y> process_cpu_ms_control_off=<z>
        attach_first_event_ms=<median> attach_first_event_max_ms=<max> attaches=<n>
and the goal verdicts (no CPU for an idle program; attach within 100 ms). Exit status 1 when a
figure could not be measured.
"""
import os
import re
import statistics
import subprocess
import sys
import time

TICK_MS = 1000.0 / os.sysconf('SC_CLK_TCK')


def task_ticks(pid, name=None):
    """utime + stime of the tasks of `pid` (only those whose comm is `name`, when given)."""
    total = 0
    found = False
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{tid}/comm') as f:
                comm = f.read().strip()
            with open(f'/proc/{pid}/task/{tid}/stat') as f:
                stat = f.read()
        except OSError:
            continue
        if name is not None and comm != name:
            continue
        fields = stat[stat.rindex(')') + 2:].split()
        total += int(fields[11]) + int(fields[12])   # fields 14 and 15: utime, stime
        found = True
    return total if found else None


def process_ticks(pid):
    with open(f'/proc/{pid}/stat') as f:
        stat = f.read()
    fields = stat[stat.rindex(')') + 2:].split()
    return int(fields[11]) + int(fields[12])


def wait_for_control_thread(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if task_ticks(pid, 'rseqtrace-ctl') is not None:
            return True
        time.sleep(0.02)
    return False


def main():
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    quick = '--quick' in sys.argv
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    rseqtrace, example, workdir = args
    idle_seconds = 3 if quick else 10
    problems = []

    # Idle cost, side by side.
    duration = idle_seconds + 3
    listening = subprocess.Popen([example, '1', '--duration', str(duration), '--rate', '200'],
                                 stdout=subprocess.DEVNULL)
    quiet_env = dict(os.environ, RSEQTRACE_CONTROL='off')
    quiet = subprocess.Popen([example, '1', '--duration', str(duration), '--rate', '200'],
                             stdout=subprocess.DEVNULL, env=quiet_env)
    control_ms = process_ms = quiet_ms = float('nan')
    try:
        if not wait_for_control_thread(listening.pid):
            problems.append('the example never started its control thread (rseqtrace-ctl)')
        else:
            time.sleep(0.5)
            c0 = task_ticks(listening.pid, 'rseqtrace-ctl')
            p0, q0 = process_ticks(listening.pid), process_ticks(quiet.pid)
            time.sleep(idle_seconds)
            c1 = task_ticks(listening.pid, 'rseqtrace-ctl')
            p1, q1 = process_ticks(listening.pid), process_ticks(quiet.pid)
            control_ms = (c1 - c0) * TICK_MS
            process_ms = (p1 - p0) * TICK_MS
            quiet_ms = (q1 - q0) * TICK_MS
    finally:
        for p in (listening, quiet):
            p.kill()
            p.wait()

    # Attach latency.
    latencies = []
    target = subprocess.Popen([example, '2', '--duration', '60', '--rate', '2000'], stdout=subprocess.DEVNULL)
    try:
        if not wait_for_control_thread(target.pid):
            problems.append('the attach target never started its control thread')
        for i in range(5):
            if problems:
                break
            out = os.path.join(workdir, f'live-attach-{i}')
            run = subprocess.run([rseqtrace, 'attach', str(target.pid), '--duration', '0.3', '--output', out],
                                 capture_output=True, text=True, timeout=60)
            match = re.search(r'^process: .*first_event_ms=([0-9.]+)', run.stdout, re.M)
            if run.returncode != 0 or not match:
                problems.append(f'attach {i} failed (status {run.returncode}): {run.stderr.strip()[-300:]}')
                break
            latencies.append(float(match.group(1)))
    finally:
        target.kill()
        target.wait()

    median = statistics.median(latencies) if latencies else float('nan')
    worst = max(latencies) if latencies else float('nan')
    print(f'live: idle_seconds={idle_seconds} control_thread_cpu_ms={control_ms:.0f} process_cpu_ms={process_ms:.0f} '
          f'process_cpu_ms_control_off={quiet_ms:.0f} attach_first_event_ms={median:.1f} '
          f'attach_first_event_max_ms={worst:.1f} attaches={len(latencies)}')
    print(f'goal: an idle instrumented program spends no CPU on tracing (control thread {control_ms:.0f} ms over '
          f'{idle_seconds} s; tick {TICK_MS:.0f} ms): {"met" if control_ms == 0 else "NOT met"}')
    print(f'goal: attaching takes effect within 100 ms (median {median:.1f} ms, worst {worst:.1f} ms of '
          f'{len(latencies)}): {"met" if latencies and worst <= 100 else "NOT met"}')
    for problem in problems:
        print(f'bench_live: {problem}', file=sys.stderr)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())

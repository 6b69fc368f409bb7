#!/usr/bin/env python3
"""check_aarch64_run.py SERIAL_LOG ITERATIONS BUILDS OP_NAME... (run by Tools/run-aarch64).

Checks the serial console output of the emulated aarch64 run (Tools/aarch64-run/init.c): the
lines starting with "RSEQTRACE-AARCH64 ". BUILDS is the number of builds in the initramfs (1: the
optimised /init; 2: also /init-O0). Fails (exit 1, one line per problem) unless:
  - no "error" line was printed and the run ended with "done status=ok" (the machine powered off
    after the test, not before);
  - every build ran in both registrations (glibc's and the shim's own), each with a kernel that
    maintains mm_cid (feature size >= 28) and at least 2 CPUs;
  - in every run, every critical section named on the command line (the ops header's list) ran on
    cpu_id and on mm_cid, with THREADS x ITERATIONS commits and as many records, and the run
    ended with status=ok;
  - aborts really happened: every run has aborts > 0 and kernel restarts (signals delivered at an
    abort handler) > 0, and so does each index variant of each run;
  - the 16-byte compare-and-swap ended with head == swaps == THREADS x 4 x ITERATIONS and no torn read.
Prints a summary: records, aborts, restarts, signals, swaps and the guest's time per run.
"""
import re
import sys

TAG = 'RSEQTRACE-AARCH64 '


def fields(text):
    return dict(re.findall(r'(\w+)=(\S+)', text))


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    log_path, iterations, builds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    expected_ops = sys.argv[4:]
    try:
        with open(log_path, 'rb') as f:
            raw = f.read().decode('utf-8', 'replace')
    except OSError as e:
        sys.exit(f'check_aarch64_run.py: cannot read {log_path}: {e.strerror}')
    lines = []
    for line in raw.splitlines():
        at = line.find(TAG)
        if at >= 0:
            lines.append(line[at + len(TAG):].strip())

    problems = []
    runs = []  # dicts: run fields, ops {(index, name): fields}, cas, end
    current = None
    done = None
    for line in lines:
        kind, _, rest = line.partition(' ')
        f = fields(rest)
        if kind == 'error':
            problems.append(f'the test reported: {rest}')
        elif kind == 'run':
            current = {'run': f, 'ops': {}, 'cas': None, 'end': None}
            runs.append(current)
        elif kind == 'op' and current is not None:
            key = (f.get('index'), f.get('name'))
            if key in current['ops']:
                problems.append(f'{key[1]} on {key[0]} reported twice in one run')
            current['ops'][key] = f
        elif kind == 'cas' and current is not None:
            current['cas'] = f
        elif kind == 'end' and current is not None:
            current['end'] = f
        elif kind == 'done':
            done = f

    if done is None:
        problems.append('no "done" line: the guest did not finish the test (crash, panic or timeout; see the log)')
    elif done.get('status') != 'ok':
        problems.append(f'the test ended with status={done.get("status")}')

    threads = None
    seen_runs = set()
    for run in runs:
        r = run['run']
        label = f'{r.get("build", "?")}/{r.get("registration", "?")}'
        seen_runs.add((r.get('build'), r.get('registration')))
        end = run['end']
        if end is None:
            problems.append(f'{label}: the run did not end')
            continue
        if end.get('status') != 'ok':
            problems.append(f'{label}: the run ended with status={end.get("status")} (its first errors are above)')
            continue
        threads = int(r.get('threads', 0))
        commits_expected = threads * iterations
        if int(r.get('iterations', -1)) != iterations:
            problems.append(f'{label}: ran {r.get("iterations")} iterations, expected {iterations}')
        if int(r.get('feature_size', 0)) < 28:
            problems.append(f'{label}: rseq feature size {r.get("feature_size")}: the kernel does not maintain mm_cid')
        if int(r.get('cpus', 0)) < 2:
            problems.append(f'{label}: {r.get("cpus")} CPU(s); the test needs at least 2 (qemu -smp 2)')
        for index in ('cpu_id', 'mm_cid'):
            aborts = restarts = 0
            for name in expected_ops:
                op = run['ops'].get((index, name))
                if op is None:
                    problems.append(f'{label}: {name} was not run on {index} '
                                    '(add it to Tools/aarch64-run/variant.h)')
                    continue
                if int(op['commits']) != commits_expected:
                    problems.append(f'{label}: {name} on {index}: {op["commits"]} commits, expected {commits_expected}')
                if int(op['records']) < commits_expected:
                    problems.append(f'{label}: {name} on {index}: {op["records"]} records for {op["commits"]} commits')
                if int(op['sig_commits']) == 0:
                    problems.append(f'{label}: {name} on {index}: no signal handler committed a record')
                aborts += int(op['aborts'])
                restarts += int(op['restarts'])
            if aborts == 0 or restarts == 0:
                problems.append(f'{label}: on {index}, {aborts} aborts and {restarts} kernel restarts: '
                                'the stress did not make the kernel abort a critical section')
        for key in run['ops']:
            if key[1] not in expected_ops:
                problems.append(f'{label}: {key[1]} is not a critical section of the ops header')
        cas = run['cas']
        if cas is None:
            problems.append(f'{label}: the rseqtrace_cas_head_stamp test did not run')
        else:
            swaps_expected = threads * 4 * iterations
            if int(cas['torn']) != 0 or int(cas['head']) != int(cas['swaps']) or int(cas['swaps']) != swaps_expected:
                problems.append(f'{label}: rseqtrace_cas_head_stamp: swaps={cas["swaps"]} head={cas["head"]} '
                                f'torn={cas["torn"]}, expected {swaps_expected} swaps, equal head, no torn read')

    builds_expected = ['optimized', 'unoptimized'][:builds]
    for build in builds_expected:
        for registration in ('glibc', 'self'):
            if (build, registration) not in seen_runs:
                problems.append(f'no {build} run with {registration} registration')

    print(f'{"run":<24} {"records":>10} {"commits":>10} {"aborts":>8} {"restarts":>8} {"signals":>8} '
          f'{"cas swaps":>10} {"guest ms":>9}')
    for run in runs:
        r, end, cas = run['run'], run['end'] or {}, run['cas'] or {}
        print(f'{r.get("build", "?") + "/" + r.get("registration", "?"):<24} {end.get("records", "-"):>10} '
              f'{end.get("commits", "-"):>10} {end.get("aborts", "-"):>8} {end.get("restarts", "-"):>8} '
              f'{end.get("signals", "-"):>8} {cas.get("swaps", "-"):>10} {end.get("ms", "-"):>9}')
    if done is not None:
        print(f'guest time of all runs: {done.get("ms")} ms')
    if problems:
        for p in problems:
            print(f'FAIL: {p}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()

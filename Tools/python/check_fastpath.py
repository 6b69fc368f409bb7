#!/usr/bin/env python3
"""Prove that the producer fast path makes no call into the Swift runtime or libc.

Run through Tools/check-fastpath, which builds the release `rseqtrace` tool and passes
`check_fastpath.py BINARY DEMANGLER...`.

The tool defines `@inline(never)` probe functions (FastPathProbes.swift of the rseqtrace tool: every
function whose mangled or demangled name contains `fastPathProbe`): out-of-line copies of what an
instrumented call site compiles to. This script

1. disassembles each probe with `objdump -d --no-show-raw-insn`,
2. collects every call/jump (conditional ones too) whose target lies outside the probe, and
   classifies it:

   FAIL  swift_retain/release/bridgeObject*/beginAccess/endAccess/allocObject/once/
         getGenericMetadata, malloc/calloc/realloc/free, syscall, pthread_*, sched_getcpu, getcpu,
         clock_gettime, memcpy, memmove; anything through the PLT (`@plt`); an indirect call or jump
         (target unknown); a `syscall` instruction; an outlined value operation of our module
         ("outlined copy/destroy/... of": retains or releases); any other symbol outside our module
         (C helpers such as rseqtrace_getcpu included).
   ok    a slow path of the RseqTrace module (mangled prefix `$s9RseqTrace`), recognised by the
         naming convention: the function's name ends in `Slow` (`openSubbufferSlow`,
         `reserveLockedSlow`, `TracepointSite.resolveSlow`, ...). Every `@inline(never)` function in
         Sources/RseqTrace must follow it; this script checks that too (FAIL otherwise).
         Any other callee of our module is flagged with a NOTE: its body is not checked (if it is
         fast-path code that was not inlined, nothing is proven about it). With
         CHECK_FASTPATH_STRICT=1 such callees are followed and checked with the same rules,
         transitively (slow paths are never followed).
   ok    a branch into __rseq_failure whose abort trampoline jumps back into the probe.

3. prints, per probe: instruction count, whether an rseq critical section is inlined (x86_64: a
   `mov %rax,%fs:0x8(...)` store arming rseq_cs, plus rdtsc), the slow-path calls, and OK/FAIL.

Environment:
  CHECK_FASTPATH_STRICT=1  check callees that are not slow paths transitively
  CHECK_FASTPATH_ALLOW     regex of call targets to accept (default: __stack_chk_fail, the noreturn
                           stack-protector failure reached only on stack corruption, memmove/memcpy
                           of text fields, and String.UTF8View.span's getter)
Exit status: 0 OK, 1 a probe fails, no probe was found or a slow path breaks the naming convention.
Verified on x86_64; the aarch64 branch/rseq patterns are best effort.
"""

import os, pathlib, re, subprocess, sys

if len(sys.argv) < 3:
    sys.exit('usage: check_fastpath.py BINARY DEMANGLER [ARGS...]  (run Tools/check-fastpath)')
binary, demangler = sys.argv[1], sys.argv[2:]
MARKER = 'fastPathProbe'
OWN_PREFIXES = ('$s9RseqTrace', '_$s9RseqTrace')
FORBIDDEN = re.compile(r'swift_retain|swift_release|swift_bridgeObject|swift_beginAccess|'
                       r'swift_endAccess|swift_allocObject|swift_once|swift_getGenericMetadata|'
                       r'\b_?_?(malloc|calloc|realloc|free|syscall|sched_getcpu|getcpu|clock_gettime|'
                       r'memcpy|memmove)\b|pthread_')
OUTLINED = re.compile(r'^outlined (copy|consume|destroy|retain|release|init|assign|'
                      r'initializeWith|assignWith)')
# Slow paths are named `...Slow`: the function's own name (the first `.name(` of the demangled
# symbol, after any "specialization ... of" prefix) ends in `Slow`.
SLOW_NAME = re.compile(r'\.(\w+)\(')

def is_slow_path(demangled):
    m = SLOW_NAME.search(demangled)
    return m is not None and m.group(1).endswith('Slow')

# The convention, checked at the source: every `@inline(never)` function of the RseqTrace module is a
# slow path and says so in its name.
ROOT = pathlib.Path(__file__).resolve().parent.parent
INLINE_NEVER = re.compile(r'@inline\(never\)')
FUNC_NAME = re.compile(r'\bfunc\s+(\w+)')

def naming_violations():
    found = []
    for path in sorted((ROOT / 'Sources' / 'RseqTrace').rglob('*.swift')):
        lines = path.read_text(encoding='utf-8').splitlines()
        for i, line in enumerate(lines):
            if not INLINE_NEVER.search(line.split('//')[0]):
                continue
            for following in lines[i:i + 6]:
                m = FUNC_NAME.search(following.split('//')[0])
                if m:
                    if not m.group(1).endswith('Slow'):
                        found.append(f'{path.relative_to(ROOT)}:{i + 1}: @inline(never) func {m.group(1)} '
                                     f'does not end in `Slow` (the slow-path naming convention)')
                    break
    return found

# __stack_chk_fail is accepted by default: the stack protector (the copy-commit probe takes the
# address of its payload value) calls it only when the stack is corrupted, and it never returns;
# the normal path makes no call.
# memmove/memcpy copy a text or byte field's bytes (a leaf copy: no lock, allocation or system call).
# String.UTF8View.span's getter (libswiftCore, not inlinable) computes the pointer and count of a
# native string's UTF-8 bytes with bit tests; it neither retains, releases nor allocates
# (disassembled and checked for Swift 6.3.1: it tail-calls _underlyingSpan, which only calls out
# for bridged/shared strings).
ALLOW = os.environ.get('CHECK_FASTPATH_ALLOW') or (
    r'^(__stack_chk_fail|memmove|memcpy)(@plt)?$|^\$sSS8UTF8ViewV4spans4SpanVys5UInt8VGvg(@plt)?$')
ALLOW = re.compile(ALLOW) if ALLOW else None
STRICT = os.environ.get('CHECK_FASTPATH_STRICT') == '1'

def run(*args, stdin=None):
    p = subprocess.run(list(args), input=stdin, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f'check-fastpath: {" ".join(args[:3])} ... failed: {p.stderr.strip()[:2000]}')
    return p.stdout

arch = 'aarch64' if 'aarch64' in run('objdump', '-f', binary) else 'x86_64'

# Function symbols, with sizes.
funcs = {}  # name -> (start, end)
for line in run('nm', '--defined-only', '-S', binary).splitlines():
    parts = line.split(None, 3)
    if len(parts) == 4 and parts[2] in 'tTwW':
        start, size = int(parts[0], 16), int(parts[1], 16)
        if size:
            funcs[parts[3]] = (start, start + size)
names = sorted(funcs)
swift_names = [n for n in names if n.startswith(('$s', '_$s'))]
out = run(*demangler, stdin='\n'.join(swift_names) + '\n').split('\n')
demangled = {n: n for n in names}
if len(out) >= len(swift_names):
    demangled.update(zip(swift_names, out))
else:
    print(f'check-fastpath: warning: {" ".join(demangler)} returned {len(out)} lines for '
          f'{len(swift_names)} symbols; matching mangled names only', file=sys.stderr)
def pretty(n):
    return demangled.get(n, n)

# __rseq_failure: abort trampolines (signature, then a jump back into the function).
failure = None
for line in run('objdump', '-h', binary).splitlines():
    m = re.match(r'^\s*\d+\s+__rseq_failure\s+([0-9a-f]+)\s+([0-9a-f]+)', line)
    if m:
        failure = (int(m.group(2), 16), int(m.group(2), 16) + int(m.group(1), 16))
INSN = re.compile(r'^\s*([0-9a-f]+):\s+(.*?)\s*$')
PREFIXES = {'notrack', 'bnd', 'rex.W', 'cs', 'ds', 'lock', 'rep', 'repz', 'repnz', 'data16'}

def parse(text):
    insns = []
    for line in text.splitlines():
        m = INSN.match(line)
        if not m or '\t' not in line:
            continue
        tokens = m.group(2).split(None, 1)
        while tokens and tokens[0] in PREFIXES and len(tokens) > 1:
            tokens = tokens[1].split(None, 1)
        if not tokens or tokens[0] == '(bad)' or tokens[0].startswith('...'):
            continue
        insns.append((int(m.group(1), 16), tokens[0], tokens[1] if len(tokens) > 1 else ''))
    return insns

trampolines = {}
if failure:
    for addr, mnem, ops in parse(run('objdump', '-d', '--no-show-raw-insn', '-j', '__rseq_failure', binary)):
        m = re.match(r'^([0-9a-f]+)\b', ops)
        if mnem in ('jmp', 'jmpq', 'b') and m:
            trampolines[addr] = int(m.group(1), 16)

def is_branch(mnem):
    if arch == 'x86_64':
        return re.fullmatch(r'(call|jmp)[qlw]?|j[a-z]{1,4}|loop\w*', mnem) is not None
    return re.fullmatch(r'bl?|b\.\w+|bc\.\w+|cbn?z|tbn?z|blr|br|braa\w*|blraa\w*', mnem) is not None

def is_indirect(mnem, ops):
    if arch == 'x86_64':
        return ops.startswith('*')
    return mnem in ('blr', 'br') or mnem.startswith(('braa', 'blraa'))

def disassemble(name):
    start, end = funcs[name]
    return parse(run('objdump', '-d', '--no-show-raw-insn', f'--start-address={start:#x}',
                     f'--stop-address={end:#x}', binary))

def symbol_at(addr):
    for n, (s, e) in funcs.items():
        if s <= addr < e:
            return n, addr - s
    return None, 0

def check(name):
    """Returns a report dict for one function."""
    start, end = funcs[name]
    insns = disassemble(name)
    r = {'name': name, 'count': len(insns), 'slow': [], 'notes': [], 'fails': [], 'callees': [],
         'aborts': 0, 'armed': 0, 'rdtsc': 0}
    for addr, mnem, ops in insns:
        if arch == 'x86_64':
            if re.search(r'%rax,%fs:0x8\(', ops) and mnem.startswith('mov'):
                r['armed'] += 1
            if mnem == 'rdtsc':
                r['rdtsc'] += 1
            if mnem in ('syscall', 'sysenter', 'int'):
                r['fails'].append(f'{addr:#x}: `{mnem}` instruction (system call)')
        else:
            if 'cntvct_el0' in ops:
                r['rdtsc'] += 1
            if mnem == 'str' and re.match(r'x16, \[x\d+, #0x8\]', ops):
                r['armed'] += 1
            if mnem in ('svc', 'hvc'):
                r['fails'].append(f'{addr:#x}: `{mnem}` instruction (system call)')
        if not is_branch(mnem):
            continue
        if is_indirect(mnem, ops):
            r['fails'].append(f'{addr:#x}: indirect `{mnem} {ops}`: target unknown, cannot prove it stays off the runtime')
            continue
        m = re.search(r'\b([0-9a-f]+) <([^>]*)>\s*$', ops) or re.search(r'\b([0-9a-f]+)\s*$', ops)
        if not m:
            continue
        target = int(m.group(1), 16)
        label = m.group(2) if m.lastindex and m.lastindex >= 2 else ''
        if start <= target < end:
            continue  # stays inside the function
        if failure and failure[0] <= target < failure[1]:
            back = trampolines.get(target)
            if back is not None and start <= back < end:
                r['aborts'] += 1
            else:
                r['fails'].append(f'{addr:#x}: branch to __rseq_failure {target:#x} whose trampoline does not jump back into this function')
            continue
        sym = re.sub(r'\+0x[0-9a-f]+$', '', label)
        if not sym or '@plt' not in sym:
            found, _ = symbol_at(target)
            sym = found or sym or f'{target:#x}'
        what = pretty(sym)
        call = f'{what}' if what == sym else f'{what}  [{sym}]'
        if ALLOW and (ALLOW.search(sym) or ALLOW.search(what)):
            r['slow'].append(f'{call}  (allowed by CHECK_FASTPATH_ALLOW)')
        elif not sym.startswith(OWN_PREFIXES) and FORBIDDEN.search(sym):
            r['fails'].append(f'{addr:#x}: `{mnem}` to forbidden {sym}')
        elif '@plt' in sym:
            hint = ''
            if sym.startswith('__stack_chk_fail'):
                hint = (' — the stack protector (a local has its address taken); only reached on stack '
                        'corruption; accept with CHECK_FASTPATH_ALLOW=__stack_chk_fail if intended')
            r['fails'].append(f'{addr:#x}: `{mnem}` through the PLT to {sym} (shared library){hint}')
        elif MARKER in sym or MARKER in what:
            continue  # another probe (or a split part of this one): checked on its own
        elif sym.startswith(OWN_PREFIXES):
            if OUTLINED.search(what):
                r['fails'].append(f'{addr:#x}: `{mnem}` to {call}: outlined value operation (retain/release)')
            elif is_slow_path(what):
                if call not in r['slow']:
                    r['slow'].append(call)
            else:
                note = (f'{call}  [NOTE: not a slow path (name not ending in `Slow`); if it is '
                        f'fast-path code, it was not inlined and is not checked]')
                if note not in r['slow']:
                    r['slow'].append(note)
                    r['callees'].append(sym)
        elif sym.startswith('rseqtrace_'):
            r['fails'].append(f'{addr:#x}: `{mnem}` to {call}: a C function of CRseqTrace (a libc or '
                              f'system-call wrapper), outside the RseqTrace module')
        else:
            r['fails'].append(f'{addr:#x}: `{mnem}` to {call}: outside the RseqTrace module')
    return r

probes = sorted((n for n in names if MARKER in n or MARKER in pretty(n)), key=lambda n: funcs[n][0])
if not probes:
    print(f'check-fastpath: FAIL: no function whose name contains `{MARKER}` in {binary}.\n'
          f'  FastPathProbes.swift of the rseqtrace tool must define @inline(never) functions named\n'
          f'  fastPathProbe* (fastPathProbeCopyCommit, fastPathProbeReserveCommit, fastPathProbeDisabled)\n'
          f'  and the demo must call them (unreferenced functions are dead-stripped).'
          + ('' if funcs else f'\n  {binary} has no symbol table: is it stripped?'), file=sys.stderr)
    sys.exit(1)

print(f'check-fastpath: {binary} ({arch}), {len(probes)} probe function(s)'
      + ('; strict: callees that are not slow paths are checked transitively' if STRICT else ''))
failed = notes = 0
violations = naming_violations()
for v in violations:
    print(f'check-fastpath: FAIL {v}')
for p in probes:
    r = check(p)
    status = 'FAIL' if r['fails'] else 'OK'
    print()
    print(f'{pretty(p)}')
    if pretty(p) != p:
        print(f'  symbol:        {p}')
    print(f'  instructions:  {r["count"]}')
    if r['armed']:
        cs = (f'yes — {r["armed"]} sequence(s) arm rseq_cs' + (' (mov %rax,%fs:0x8(...))' if arch == 'x86_64' else '')
              + f', {r["rdtsc"]} cycle-counter read(s), {r["aborts"]} branch(es) to abort handlers')
    else:
        cs = 'no' + (f' ({r["rdtsc"]} cycle-counter read(s))' if r['rdtsc'] else '')
    print(f'  rseq critical section inlined: {cs}')
    print(f'  slow-path calls: {"none" if not r["slow"] else ""}')
    for s in r['slow']:
        print(f'    {s}')
    if STRICT:
        seen, queue = {p}, list(r['callees'])
        while queue:
            c = queue.pop(0)
            if c in seen or c not in funcs:
                continue
            seen.add(c)
            cr = check(c)
            print(f'  followed (strict): {pretty(c)}: {cr["count"]} instructions, '
                  f'{"FAIL" if cr["fails"] else "OK"}')
            for f in cr['fails']:
                r['fails'].append(f'in {pretty(c)}: {f}')
            queue.extend(cr['callees'])
        status = 'FAIL' if r['fails'] else 'OK'
    for f in r['fails']:
        print(f'  FORBIDDEN {f}')
    print(f'  {status}')
    failed += status == 'FAIL'
    notes += sum(1 for s in r['slow'] if 'NOTE:' in s) if not STRICT else 0

print()
if notes:
    print('check-fastpath: NOTE: some probes call RseqTrace functions that are not slow paths (names '
          'ending in `Slow`); their bodies are not checked (CHECK_FASTPATH_STRICT=1 follows those calls).')
if violations:
    print(f'check-fastpath: FAIL — {len(violations)} @inline(never) function(s) of RseqTrace break the '
          f'slow-path naming convention', file=sys.stderr)
    sys.exit(1)
if failed:
    print(f'check-fastpath: FAIL — {failed} of {len(probes)} probe(s) call into the runtime or libc', file=sys.stderr)
    sys.exit(1)
print(f'check-fastpath: OK — {len(probes)} probe(s), no call into the Swift runtime or libc')

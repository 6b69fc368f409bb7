#!/usr/bin/env python3
"""inspect_rseq_sections.py MODE ARCH FILE MINIMUM [OBJDUMP] (run by Tools/check-aarch64).

Checks the rseq metadata of one compiled file of critical sections:
  MODE obj  FILE is an object file, read with OBJDUMP (-h, -s, -r, -t);
  MODE asm  FILE is `clang -S` output (when no objdump understands ARCH).
Section `__rseq_cs` holds at least MINIMUM descriptors, each version 0 and flags 0; section
`__rseq_failure` exists; every abort_ip points into `__rseq_failure` right after the rseq
signature of ARCH (aarch64 0xd428bc00; x86_64 `ud1 0x53053053(%rip)`).
Prints a one-line summary and exits 0, or prints each problem on stderr and exits 1.
"""
import re, subprocess, sys

mode, arch, path, minimum = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
objdump = sys.argv[5] if len(sys.argv) > 5 else ''
SIG = {'aarch64': bytes.fromhex('00bc28d4'), 'x86_64': bytes.fromhex('0fb93d53300553')}[arch]
errors = []

def run(*args):
    p = subprocess.run([objdump, *args, path], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f'{objdump} {" ".join(args)} failed: {p.stderr.strip()}')
    return p.stdout

def contents(name):
    data = bytearray()
    for line in run('-s', '-j', name).splitlines():
        m = re.match(r'^ ([0-9a-f]{4,}) ((?:[0-9a-f ]){35})  ', line + '  ')
        if not m:
            m = re.match(r'^ ([0-9a-f]{4,}) ([0-9a-f ]+?)\s*$', line)
            if not m:
                continue
        off = int(m.group(1), 16)
        chunk = bytes.fromhex(m.group(2).replace(' ', ''))
        if len(data) < off:
            data.extend(b'\0' * (off - len(data)))
        data[off:off + len(chunk)] = chunk
    return bytes(data)

if mode == 'obj':
    sections = {}
    for line in run('-h').splitlines():
        m = re.match(r'^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s', line)
        if m:
            sections[m.group(1)] = int(m.group(2), 16)
    for s in ('__rseq_cs', '__rseq_failure'):
        if s not in sections:
            sys.exit(f'section {s} missing (sections: {" ".join(sorted(sections))})')
    symbols = {}
    for line in run('-t').splitlines():
        m = re.match(r'^([0-9a-f]{8,})\s.{7}\s(\S+)\s+[0-9a-f]+\s+(.*)$', line)
        if m:
            symbols[m.group(3).strip()] = (m.group(2), int(m.group(1), 16))
    cs = contents('__rseq_cs')
    failure = contents('__rseq_failure')
    size = sections['__rseq_cs']
    if size % 32:
        errors.append(f'__rseq_cs is {size} bytes, not a multiple of 32 (one descriptor = 32 bytes)')
    count = size // 32
    for d in range(count):
        if cs[d * 32:d * 32 + 8] != bytes(8):
            errors.append(f'descriptor {d}: version/flags are not 0')
    aborts, starts = {}, {}
    current = None  # parse `-r` for all sections: GNU and LLVM objdump differ in what -j selects
    for line in run('-r').splitlines():
        h = re.match(r'^RELOCATION RECORDS FOR \[(\S+)\]:', line)
        if h:
            current = h.group(1)
            continue
        if current not in ('__rseq_cs', '.rela__rseq_cs'):
            continue
        m = re.match(r'^([0-9a-f]+)\s+(R_\S+)\s+(\S+?)(?:([+-])0x([0-9a-f]+))?\s*$', line)
        if not m:
            continue
        off = int(m.group(1), 16)
        target = m.group(3)
        addend = int(m.group(5), 16) if m.group(5) else 0
        if m.group(4) == '-':
            addend = -addend
        if target not in sections and target in symbols:
            sec, value = symbols[target]
            target, addend = sec, value + addend
        if off % 32 == 24:
            aborts[off // 32] = (target, addend)
        elif off % 32 == 8:
            starts[off // 32] = (target, addend)
    for d in range(count):
        if d not in starts:
            errors.append(f'descriptor {d}: start_ip has no relocation')
        elif starts[d][0] in ('__rseq_failure', '__rseq_cs'):
            errors.append(f'descriptor {d}: start_ip points into {starts[d][0]}')
        if d not in aborts:
            errors.append(f'descriptor {d}: abort_ip has no relocation')
            continue
        sec, off = aborts[d]
        if sec != '__rseq_failure':
            errors.append(f'descriptor {d}: abort_ip points into {sec}, not __rseq_failure')
            continue
        before = failure[off - len(SIG):off] if off >= len(SIG) else b''
        if before != SIG:
            errors.append(f'descriptor {d}: abort target __rseq_failure+{off:#x} is preceded by '
                          f'{before.hex(" ") or "nothing"}, expected signature {SIG.hex(" ")}')
    if count < minimum:
        errors.append(f'{count} descriptors in __rseq_cs, expected at least {minimum}')
    summary = (f'__rseq_cs: {count} descriptors; __rseq_failure: {len(aborts)} abort targets, '
               f'each preceded by {SIG.hex(" ")}')
else:  # 'asm': clang -S text, last resort without any objdump
    # Follows the section switches, collects the descriptors in __rseq_cs (5 data items each:
    # version, flags, start_ip, post_commit_offset, abort_ip) and, for every label in
    # __rseq_failure, the data bytes emitted right before it.
    def num(tok):
        tok = tok.strip()
        return int(tok, 0) if re.fullmatch(r'-?(0x[0-9a-fA-F]+|\d+)', tok) else None
    stack, section = [], '.text'
    cs_items, before_label, pending = [], {}, b''
    for raw in open(path).read().splitlines():
        line = raw.split('//')[0].split('#')[0].strip() if arch == 'aarch64' else raw.split('#')[0].strip()
        if not line:
            continue
        m = re.match(r'^\.(pushsection|section)\s+([^,\s]+)', line)
        if m:
            if m.group(1) == 'pushsection':
                stack.append(section)
            section, pending = m.group(2), b''
            continue
        if line == '.popsection':
            section, pending = (stack.pop() if stack else '.text'), b''
            continue
        if line in ('.text', '.data', '.bss') or line.startswith('.previous'):
            section, pending = (line if line != '.previous' else '.text'), b''
            continue
        lm = re.match(r'^([.\w$]+):$', line)
        if lm:
            if section == '__rseq_failure':
                before_label[lm.group(1)] = pending
            continue
        dm = re.match(r'^\.(byte|short|hword|long|word|inst|quad|xword|dword)\s+(.*)$', line)
        if section == '__rseq_cs' and dm and dm.group(1) in ('long', 'word', 'quad', 'xword', 'dword'):
            cs_items.extend(x.strip() for x in dm.group(2).split(','))
        elif section == '__rseq_failure':
            if dm and dm.group(1) in ('byte', 'short', 'hword', 'long', 'word', 'inst'):
                width = {'byte': 1, 'short': 2, 'hword': 2, 'long': 4, 'inst': 4,
                         'word': 4 if arch == 'aarch64' else 2}[dm.group(1)]
                for tok in dm.group(2).split(','):
                    v = num(tok)
                    pending = pending + ((v or 0) & ((1 << (8 * width)) - 1)).to_bytes(width, 'little') if v is not None else b''
            elif not line.startswith('.'):
                pending = b''  # an instruction
    count = len(cs_items) // 5
    if len(cs_items) % 5:
        errors.append(f'__rseq_cs holds {len(cs_items)} data items, not a multiple of 5')
    for d in range(count):
        version, flags, _, _, abort = cs_items[d * 5:d * 5 + 5]
        if num(version) != 0 or num(flags) != 0:
            errors.append(f'descriptor {d}: version/flags are not 0')
        if abort not in before_label:
            errors.append(f'descriptor {d}: abort_ip {abort} is not a label in __rseq_failure')
        elif not before_label[abort].endswith(SIG):
            errors.append(f'descriptor {d}: abort label {abort} is preceded by '
                          f'{before_label[abort].hex(" ") or "no data"}, expected {SIG.hex(" ")}')
    if count < minimum:
        errors.append(f'{count} descriptors in __rseq_cs, expected at least {minimum}')
    summary = (f'(from clang -S) __rseq_cs: {count} descriptors; each abort label in __rseq_failure '
               f'preceded by {SIG.hex(" ")}')

if errors:
    for e in errors:
        print(f'  {e}', file=sys.stderr)
    sys.exit(1)
print(summary)

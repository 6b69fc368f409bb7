#!/usr/bin/env python3
"""check_unsafe.py (run as Tools/check-unsafe) — every `unsafe` expression marker must carry a `// SAFETY:` reason.

Scans Sources/**/*.swift, Tests/**/*.swift and Benchmarks/**/*.swift for the Swift 6.2
keyword `unsafe` used as an expression marker (`unsafe foo()`, `let p = unsafe q`,
`for unsafe x in ...`). Not counted: the `@unsafe` attribute, identifiers (`withUnsafeBytes`,
`UnsafeMutableRawPointer`), members (`.unsafe`), `nonisolated(unsafe)` / `unowned(unsafe)`, and
anything inside comments or string literals (string interpolations are code and are scanned).

Rule (one line per site, deliberately simple):
  An `unsafe` site is covered when
    (a) its own line carries a trailing `// SAFETY: ...` comment, or
    (b) the nearest non-blank line above it is part of a block of consecutive `//` comment lines
        one of which starts with `// SAFETY:`.
  When looking for that line, lines of the same multi-line expression are skipped: a line above
  is part of the same expression when it ends with `(`, `[`, `,`, `=`, `&&`, `||` or a closure
  header (`{ x in`), or when the line below it starts with `.`, `)` or `]`. (The SAFETY comment
  then sits above the first line of the statement.) Anything else in between — another statement, a `{`/`}` line, a plain
  comment without SAFETY:, a blank line — means the site needs its own SAFETY line.
  So two consecutive statements that both use `unsafe` need two SAFETY lines, or one trailing
  `// SAFETY:` on the second.

Output: `file:line: unsafe without a // SAFETY: reason` per violating line; exit 1 if any.
When clean, prints the number of audited sites and exits 0. Exit 2: cannot run (no python3).
Usage: Tools/check-unsafe [files...]   (default: the trees above and Benchmarks/, from the package root)
"""
import glob
import os
import re
import sys

MARKER = re.compile(r'(?:^|(?<=[^A-Za-z0-9_@.$`#\\]))unsafe(?=[ \t(]|$)')
CONT_END = re.compile(r'(\(|\[|,|=|&&|\|\||\{[^{}]*\bin)$')
CONT_START = re.compile(r'^[.)\]]')
SAFETY = re.compile(r'^\s*SAFETY:')


def lex(text):
    """Split Swift source into per-line (code, [line comments], has_block_comment).

    Comments are removed from `code`; string literal contents are dropped (the quotes stay),
    interpolations `\\( ... )` stay as code. Handles nested block comments, multi-line and raw
    (#"..."#) strings."""
    code = [[]]
    comments = [[]]
    block = [False]
    stack = []  # ('block', depth) | ('str', hashes, multiline) | ('interp', parens)
    i, n = 0, len(text)

    def newline():
        code.append([])
        comments.append([])
        block.append(False)

    while i < n:
        c = text[i]
        top = stack[-1] if stack else None
        if c == '\n':
            newline()
            i += 1
            continue
        if top is not None and top[0] == 'block':
            block[-1] = True
            if text.startswith('/*', i):
                stack[-1] = ('block', top[1] + 1)
                i += 2
            elif text.startswith('*/', i):
                if top[1] == 1:
                    stack.pop()
                else:
                    stack[-1] = ('block', top[1] - 1)
                i += 2
            else:
                i += 1
            continue
        if top is not None and top[0] == 'str':
            hashes, multi = top[1], top[2]
            esc = '\\' + '#' * hashes
            if text.startswith(esc, i):
                j = i + len(esc)
                if j < n and text[j] == '(':
                    stack.append(('interp', 1))
                    code[-1].append('(')
                    i = j + 1
                elif j < n and text[j] == '\n':
                    i = j  # line continuation in a multi-line string
                else:
                    i = j + 1  # escaped character
                continue
            close = ('"""' if multi else '"') + '#' * hashes
            if text.startswith(close, i):
                stack.pop()
                code[-1].append('"')
                i += len(close)
                continue
            i += 1
            continue
        # code (top level or inside an interpolation)
        if text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j < 0 else j
            comments[-1].append(text[i + 2:j])
            i = j
            continue
        if text.startswith('/*', i):
            stack.append(('block', 1))
            block[-1] = True
            i += 2
            continue
        if c == '#' or c == '"':
            j = i
            while j < n and text[j] == '#':
                j += 1
            if j < n and text[j] == '"':
                hashes = j - i
                multi = text.startswith('"""', j)
                stack.append(('str', hashes, multi))
                code[-1].append('"')
                i = j + (3 if multi else 1)
                continue
        if top is not None and top[0] == 'interp':
            if c == '(':
                stack[-1] = ('interp', top[1] + 1)
            elif c == ')':
                if top[1] == 1:
                    stack.pop()
                    code[-1].append(')')
                    i += 1
                    continue
                stack[-1] = ('interp', top[1] - 1)
        code[-1].append(c)
        i += 1
    return [(''.join(a), b, blk) for a, b, blk in zip(code, comments, block)]


def check(path):
    with open(path, encoding='utf-8', errors='replace') as f:
        lines = lex(f.read())
    sites = 0
    bad = []

    def blank(k):
        code, comms, blk = lines[k]
        return not code.strip() and not comms and not blk

    def comment_only(k):
        code, comms, blk = lines[k]
        return not code.strip() and (comms or blk)

    def has_safety(k):
        return any(SAFETY.match(c) for c in lines[k][1])

    def prev_nonblank(k):
        k -= 1
        while k >= 0 and blank(k):
            k -= 1
        return k

    for idx, (code, comms, _) in enumerate(lines):
        hits = len(MARKER.findall(code))
        if not hits:
            continue
        sites += hits
        if has_safety(idx):
            continue
        cur = idx
        ok = False
        while True:
            p = prev_nonblank(cur)
            if p < 0:
                break
            if comment_only(p):
                # the whole contiguous block of comment lines ending at p
                k = p
                while k >= 0 and comment_only(k):
                    if has_safety(k):
                        ok = True
                        break
                    k -= 1
                break
            if has_safety(p):
                ok = True
                break
            if p != cur - 1:
                break  # a blank line separates them: not the same expression
            pcode = lines[p][0].strip()
            ccode = lines[cur][0].strip()
            if CONT_END.search(pcode) or CONT_START.match(ccode):
                cur = p
                continue
            break
        if not ok:
            bad.append(idx + 1)
    return sites, bad


def main(argv):
    if argv:
        files = argv
    else:
        files = []
        for pattern in ('Sources/**/*.swift', 'Tests/**/*.swift', 'Benchmarks/**/*.swift'):
            files.extend(glob.glob(pattern, recursive=True))
        files = sorted(set(files))
    total_sites = 0
    violations = []
    for path in files:
        sites, bad = check(path)
        total_sites += sites
        violations.extend((path, line) for line in bad)
    for path, line in violations:
        print(f'{path}:{line}: unsafe without a // SAFETY: reason')
    if violations:
        nfiles = len({p for p, _ in violations})
        print(f'check-unsafe: {len(violations)} line(s) in {nfiles} file(s) use `unsafe` without a '
              f'// SAFETY: reason ({total_sites} unsafe sites scanned in {len(files)} files)',
              file=sys.stderr)
        print('check-unsafe: put a `// SAFETY: <why this is sound>` line directly above the statement '
              '(or at the end of the line); see the rule in Tools/python/check_unsafe.py', file=sys.stderr)
        return 1
    print(f'check-unsafe: OK — {total_sites} unsafe sites in {len(files)} files, each with a // SAFETY: reason')
    return 0


sys.exit(main(sys.argv[1:]))

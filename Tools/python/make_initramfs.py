#!/usr/bin/env python3
"""make_initramfs.py OUT.cpio.gz INIT [NAME=FILE ...] (run by Tools/run-aarch64).

Writes a gzip-compressed initramfs (cpio "newc" format, what the Linux kernel unpacks) holding
/init (the file INIT, mode 0755), a /dev directory, the /dev/console character device (5, 1) so
that the kernel can give /init a console, and any further NAME=FILE pairs as executables /NAME.
Needs no cpio binary and no root privileges.
"""
import gzip, os, stat, sys


def entry(ino, name, mode, data=b'', rdev=(0, 0)):
    name_bytes = name.encode() + b'\0'
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_bytes), 0]
    header = b'070701' + b''.join(b'%08X' % f for f in fields)
    out = header + name_bytes
    out += b'\0' * (-len(out) % 4)
    out += data
    out += b'\0' * (-len(out) % 4)
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_path, init = sys.argv[1], sys.argv[2]
    files = [('init', init)]
    for arg in sys.argv[3:]:
        name, _, path = arg.partition('=')
        if not name or not path:
            sys.exit(f'make_initramfs.py: "{arg}" is not NAME=FILE')
        files.append((name, path))
    blob = entry(1, 'dev', stat.S_IFDIR | 0o755)
    blob += entry(2, 'dev/console', stat.S_IFCHR | 0o600, rdev=(5, 1))
    for ino, (name, path) in enumerate(files, start=3):
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError as e:
            sys.exit(f'make_initramfs.py: cannot read {path}: {e.strerror}')
        blob += entry(ino, name, stat.S_IFREG | 0o755, data)
    blob += entry(0, 'TRAILER!!!', 0)
    blob += b'\0' * (-len(blob) % 512)
    with gzip.open(out_path, 'wb', compresslevel=6) as f:
        f.write(blob)


if __name__ == '__main__':
    main()

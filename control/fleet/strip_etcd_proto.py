#!/usr/bin/env python3
"""Copies one of etcd's .proto files without its Go-only annotations.

etcd's API definitions (rpc.proto, kv.proto, auth.proto) carry gogoproto
options (code generation hints for Go) and google.api.http options (routes of
its JSON gateway). Neither changes the wire format; protoc needs their own
.proto files to parse them, which Debian ships only inside large Go packages.
This drops the two imports, the file-level `option (gogoproto.x) = y;` lines,
bracketed `[(gogoproto.x) = y]` field options and the
`option (google.api.http) = { ... };` blocks, and fails on anything else that
names them, so that a new etcd version cannot slip past unnoticed.

It also renames etcd's own imports, "etcd/mvcc/mvccpb/kv.proto" to
"etcd_kv.proto": meson's generated files sit in one directory. A file's name
is not part of the wire format.

usage: strip_etcd_proto.py INPUT OUTPUT
"""
import re
import sys

IMPORT = re.compile(r'^\s*import\s+"(gogoproto/gogo|google/api/annotations)\.proto";\s*$')
FILE_OPTION = re.compile(r'^\s*option\s+\(gogoproto\.\w+\)\s*=\s*\w+;\s*$')
FIELD_OPTIONS = re.compile(r'\s*\[\s*\(gogoproto\.\w+\)\s*=\s*[^\]]*\]')
# The block holds routes and `additional_bindings { ... }`: one level of nesting.
ETCD_IMPORT = re.compile(r'^(\s*import\s+)"etcd/(?:[\w.]+/)*(\w+)\.proto";')
HTTP_OPTION = re.compile(r'option\s+\(google\.api\.http\)\s*=\s*\{(?:[^{}]|\{[^{}]*\})*\};')


def strip(text: str) -> str:
    text = HTTP_OPTION.sub('', text)
    out = []
    for line in text.splitlines():
        if IMPORT.match(line) or FILE_OPTION.match(line):
            continue
        line = FIELD_OPTIONS.sub('', line)
        line = ETCD_IMPORT.sub(r'\1"etcd_\2.proto";', line)
        if 'gogoproto' in line or 'google.api' in line:
            raise ValueError(f'unexpected annotation left: {line.strip()}')
        out.append(line)
    return '\n'.join(out) + '\n'


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding='utf-8') as f:
        text = f.read()
    try:
        stripped = strip(text)
    except ValueError as e:
        print(f'{sys.argv[1]}: {e}', file=sys.stderr)
        return 1
    with open(sys.argv[2], 'w', encoding='utf-8') as f:
        f.write(stripped)
    return 0


if __name__ == '__main__':
    sys.exit(main())

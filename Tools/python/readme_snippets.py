#!/usr/bin/env python3
"""Extracts README.md's Swift snippets into test targets, so that the test suite compiles them.

Every ```swift block of README.md must follow a marker line (the line right before the fence):

    <!-- compile: TARGET[, TARGET...] -->
        the block is top-level code of Tests/<TARGET>/ReadmeSnippets.generated.swift
    <!-- compile: TARGET; func NAME(PARAMETERS) [throws] [-> TYPE]; replace "A" with B; return EXPR -->
        the block is the body of that function (which supplies the values the snippet names);
        `replace` (optional, repeatable) substitutes literal text A with B in the block, `return`
        (optional) ends the body with `return EXPR`
    <!-- manifest -->
        a Package.swift excerpt: not compiled here (Tools/test evaluates it with
        `swift package dump-package` in a scratch package; see manifest_package below)

`import` lines are gathered at the top of each generated file. A block without a marker is an
error, so no snippet escapes compilation.

    Tools/readme-snippets            rewrite the generated files
    Tools/readme-snippets --check    exit 1 (with a diff) if a committed file differs from the
                                     README's snippets (Tools/test runs this)
    Tools/readme-snippets --manifest DIR
                                     write a package in DIR whose Package.swift holds the README's
                                     manifest excerpt (for `swift package dump-package`)
"""
import difflib
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
README = os.path.join(ROOT, "README.md")
MARKER = re.compile(r"^<!--\s*(compile|manifest)\s*:?\s*(.*?)\s*-->\s*$")


class SnippetError(Exception):
    pass


def blocks(text):
    """(line number of the fence, section heading, marker kind, marker text, code lines) of every
    ```swift block."""
    lines = text.split("\n")
    found = []
    index = 0
    heading = "README.md"
    in_other_fence = False
    while index < len(lines):
        stripped = lines[index].strip()
        if in_other_fence:
            in_other_fence = stripped != "```"
        elif re.match(r"#{1,6} \S", lines[index]):
            heading = lines[index].lstrip("#").strip()
        elif stripped.startswith("```") and stripped != "```swift":
            in_other_fence = True
        elif stripped == "```swift":
            start = index
            previous = lines[index - 1] if index > 0 else ""
            match = MARKER.match(previous)
            if not match:
                raise SnippetError(f"README.md:{start + 1}: a ```swift block needs a marker on the line before it "
                                   f"(<!-- compile: TARGET --> or <!-- manifest -->); see Tools/python/readme_snippets.py")
            code = []
            index += 1
            while index < len(lines) and lines[index].strip() != "```":
                code.append(lines[index])
                index += 1
            if index == len(lines):
                raise SnippetError(f"README.md:{start + 1}: the ```swift block is not closed")
            found.append((start + 1, heading, match.group(1), match.group(2), code))
        index += 1
    return found


def parse_compile(line, marker):
    """(targets, function signature or None, replacements, return expression or None)."""
    clauses = [c.strip() for c in marker.split(";") if c.strip()]
    if not clauses:
        raise SnippetError(f"README.md:{line}: <!-- compile: --> names no target")
    targets = [t.strip() for t in clauses[0].split(",") if t.strip()]
    for target in targets:
        if not os.path.isdir(os.path.join(ROOT, "Tests", target)):
            raise SnippetError(f"README.md:{line}: no test target Tests/{target}")
    signature, replacements, result = None, [], None
    for clause in clauses[1:]:
        replace = re.fullmatch(r'replace\s+(".*?")\s+with\s+(.+)', clause)
        if clause.startswith("func "):
            signature = clause
        elif replace:
            replacements.append((replace.group(1), replace.group(2)))
        elif clause.startswith("return "):
            result = clause[len("return "):]
        else:
            raise SnippetError(f"README.md:{line}: cannot read the clause '{clause}' (func ..., replace \"A\" with B, return EXPR)")
    if result and not signature:
        raise SnippetError(f"README.md:{line}: 'return' needs a 'func' clause")
    return targets, signature, replacements, result


def render(text):
    """{target: text of Tests/<target>/ReadmeSnippets.generated.swift}."""
    per_target = {}
    for line, heading, kind, marker, code in blocks(text):
        if kind == "manifest":
            continue
        targets, signature, replacements, result = parse_compile(line, marker)
        imports = [c.strip() for c in code if c.startswith("import ")]
        body = [c for c in code if not c.startswith("import ")]
        for old, new in replacements:
            if not any(old in c for c in body):
                raise SnippetError(f"README.md:{line}: 'replace {old}' matches nothing in the block")
            body = [c.replace(old, new) for c in body]
        while body and not body[0].strip():
            body.pop(0)
        while body and not body[-1].strip():
            body.pop()
        if signature:
            body = [signature + " {"] + [("    " + c) if c.strip() else "" for c in body]
            if result:
                body.append(f"    return {result}")
            body.append("}")
        for target in targets:
            entry = per_target.setdefault(target, (set(), []))
            entry[0].update(imports)
            entry[1].append((heading, body))
    files = {}
    for target, (imports, snippets) in sorted(per_target.items()):
        out = ["// GENERATED by Tools/readme-snippets from README.md's ```swift blocks — do not edit.",
               "// The test suite compiles these; ReadmeSnippetTests.swift runs them.", ""]
        out += sorted(imports)
        for heading, body in snippets:
            out += ["", f"// README.md, section \"{heading}\""] + body
        files[target] = "\n".join(out) + "\n"
    return files


def manifest_package(text, directory):
    """Writes DIR/Package.swift from the README's manifest excerpt (a `dependencies:` entry and a
    target's `dependencies:` list), completed into a package named MyServer with that target."""
    manifests = [code for _, _, kind, _, code in blocks(text) if kind == "manifest"]
    if len(manifests) != 1:
        raise SnippetError(f"README.md: expected one <!-- manifest --> block, found {len(manifests)}")
    os.makedirs(os.path.join(directory, "Sources", "MyServer"), exist_ok=True)
    with open(os.path.join(directory, "Package.swift"), "w") as f:
        f.write("\n".join(manifests[0]) + "\n")
    with open(os.path.join(directory, "Sources", "MyServer", "main.swift"), "w") as f:
        f.write("print(\"MyServer\")\n")


def path_for(target):
    return os.path.join(ROOT, "Tests", target, "ReadmeSnippets.generated.swift")


def main(argv):
    with open(README) as f:
        text = f.read()
    try:
        if argv[1:2] == ["--manifest"] and len(argv) == 3:
            manifest_package(text, argv[2])
            return 0
        files = render(text)
    except SnippetError as error:
        print(f"readme-snippets: {error}", file=sys.stderr)
        return 1
    if argv[1:] == ["--check"]:
        stale = False
        existing = {name for name in os.listdir(os.path.join(ROOT, "Tests"))
                    if os.path.exists(path_for(name))}
        for target in sorted(existing | set(files)):
            path = path_for(target)
            current = open(path).read() if os.path.exists(path) else ""
            wanted = files.get(target, "")
            if current != wanted:
                stale = True
                sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), wanted.splitlines(True),
                                                           path, "README.md's snippets"))
        if stale:
            print("readme-snippets: the generated snippet files differ from README.md: run Tools/readme-snippets",
                  file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print("usage: Tools/readme-snippets [--check | --manifest DIR]", file=sys.stderr)
        return 2
    for target, content in files.items():
        with open(path_for(target), "w") as f:
            f.write(content)
    for name in os.listdir(os.path.join(ROOT, "Tests")):
        if name not in files and os.path.exists(path_for(name)):
            os.remove(path_for(name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

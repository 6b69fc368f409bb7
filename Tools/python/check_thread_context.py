#!/usr/bin/python3
"""Check, with babeltrace2's Python bindings (bt2), that every event of a trace of
`rseqtrace-example N M --spans` carries the writer's thread in its `vtid` / `vpid` event context:
each worker records `example:worker` {worker, tid} with the tid it got from gettid(), and every
`example:work` event of that worker must carry that vtid; every event must carry the program's pid
(the trace's `vpid` environment entry) as vpid; span events must carry one of the workers' tids.

Usage: check_thread_context.py TRACE_DIRECTORY
Prints one line:
  threads: events=<n> workers=<n> work_checked=<n> span_checked=<n> mismatched=<n> missing_context=<n>
Exit status 0 when the trace could be read, 2 otherwise.
"""
import sys

import bt2


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    events = []
    pid = None
    for message in bt2.TraceCollectionMessageIterator(sys.argv[1]):
        if type(message) is bt2._StreamBeginningMessageConst and pid is None:
            env = message.stream.trace.environment
            if "vpid" in env:
                pid = int(env["vpid"])
        if type(message) is not bt2._EventMessageConst:
            continue
        event = message.event
        context = event.common_context_field
        if context is None or "vtid" not in context or "vpid" not in context:
            events.append((event.name, None, None, event.payload_field))
            continue
        events.append((event.name, int(context["vtid"]), int(context["vpid"]), event.payload_field))
    tids = {}
    for name, _, _, payload in events:
        if name == "example:worker":
            tids[int(payload["worker"])] = int(payload["tid"])
    counts = {"work": 0, "span": 0, "mismatched": 0, "missing": 0}
    for name, vtid, vpid, payload in events:
        if vtid is None:
            counts["missing"] += 1
            continue
        if pid is not None and vpid != pid:
            counts["mismatched"] += 1
        if name in ("example:work", "example:worker"):
            counts["work"] += 1
            if tids.get(int(payload["worker"])) != vtid:
                counts["mismatched"] += 1
        elif name.startswith("rseqtrace:span_"):
            counts["span"] += 1
            if vtid not in tids.values():
                counts["mismatched"] += 1
    print(f"threads: events={len(events)} workers={len(tids)} work_checked={counts['work']} "
          f"span_checked={counts['span']} mismatched={counts['mismatched']} missing_context={counts['missing']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

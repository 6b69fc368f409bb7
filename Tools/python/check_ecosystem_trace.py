#!/usr/bin/env python3
"""Reads a trace of the ecosystem backends (RseqTraceLogging, RseqTraceTracing) with babeltrace2's
Python bindings (bt2), independently of RseqTrace's reader, and checks how its spans fit together.

Usage: check_ecosystem_trace.py TRACE_DIRECTORY

Prints one line:
  bt2: events=N log=N starts=N ends=N begins=N slice_ends=N span_events=N errors=N links=N
       unmatched=N name_mismatch=N bad_parent=N bad_trace=N duration_mismatch=N discarded=N
where
  unmatched         spans whose four events (rseqtrace:span_begin, tracing:span_start,
                    tracing:span_end, rseqtrace:span_end) are not all there exactly once
  name_mismatch     a span_start whose operation differs from its span_begin's name
  bad_parent        a non-zero parent_span_id that is no span of this trace and whose trace id is
                    one this process started (a remote parent has a foreign trace id)
  bad_trace         a child whose trace id differs from its parent's
  duration_mismatch a tracing:span_end whose duration_ns differs from its rseqtrace:span_end's
Exit status 0 when it could read the trace, 2 otherwise.
"""
import collections
import sys

from bt2_events import TraceEvents


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    counts = collections.Counter()
    begins = collections.defaultdict(list)
    starts = collections.defaultdict(list)
    ends = collections.defaultdict(list)
    slice_ends = collections.defaultdict(list)
    trace = TraceEvents(sys.argv[1])
    for event in trace:
        payload = event.payload_field
        counts[event.name] += 1
        if event.name == "rseqtrace:span_begin":
            begins[int(payload["id"])].append(str(payload["name"]))
        elif event.name == "rseqtrace:span_end":
            slice_ends[int(payload["id"])].append(int(payload["duration_ns"]))
        elif event.name == "tracing:span_start":
            starts[int(payload["span_id"])].append(
                (str(payload["trace_id"]), int(payload["parent_span_id"]), str(payload["operation"])))
        elif event.name == "tracing:span_end":
            ends[int(payload["span_id"])].append(int(payload["duration_ns"]))

    ids = set(begins) | set(starts) | set(ends) | set(slice_ends)
    unmatched = sum(1 for i in ids if not (len(begins[i]) == len(starts[i]) == len(ends[i]) == len(slice_ends[i]) == 1))
    name_mismatch = sum(1 for i in ids if len(begins[i]) == 1 and len(starts[i]) == 1 and begins[i][0] != starts[i][0][2])
    duration_mismatch = sum(1 for i in ids if len(ends[i]) == 1 and len(slice_ends[i]) == 1 and ends[i][0] != slice_ends[i][0])
    local_traces = {s[0][0] for s in starts.values() if s and s[0][1] == 0}
    bad_parent = bad_trace = 0
    for span_id, found in starts.items():
        trace_id, parent, _ = found[0]
        if parent == 0:
            continue
        if parent in starts:
            bad_trace += starts[parent][0][0] != trace_id
        elif trace_id in local_traces:
            bad_parent += 1

    print("bt2: " + " ".join(f"{k}={v}" for k, v in [
        ("events", sum(counts.values())), ("log", counts["log:message"]),
        ("starts", counts["tracing:span_start"]), ("ends", counts["tracing:span_end"]),
        ("begins", counts["rseqtrace:span_begin"]), ("slice_ends", counts["rseqtrace:span_end"]),
        ("span_events", counts["tracing:span_event"]), ("errors", counts["tracing:span_error"]),
        ("links", counts["tracing:span_link"]), ("unmatched", unmatched), ("name_mismatch", name_mismatch),
        ("bad_parent", bad_parent), ("bad_trace", bad_trace), ("duration_mismatch", duration_mismatch),
        ("discarded", trace.discarded)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

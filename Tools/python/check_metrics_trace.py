#!/usr/bin/env python3
"""Reads the metrics of a trace (RseqTraceMetrics, per-CPU counters) with babeltrace2's Python
bindings (bt2), independently of RseqTrace's reader.

Usage: check_metrics_trace.py TRACE_DIRECTORY

Prints one line:
  bt2: samples=N decreasing=N fp_counter=N meter=N recorder=N timer=N timer_ns=SUM discarded=N
then one line per counter (names may contain `=`, so the value comes first):
  bt2-counter: LAST NAME
where
  samples      metrics:counter events
  decreasing   samples whose value is below the previous sample of the same counter (in time order)
  LAST         the value of counter NAME's last sample
  timer_ns     the sum of the duration_ns fields of metrics:timer events
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
    last = {}
    decreasing = 0
    timer_ns = 0
    trace = TraceEvents(sys.argv[1])
    for event in trace:
        name = event.name
        payload = event.payload_field
        if name == "metrics:counter":
            counts["samples"] += 1
            counter = str(payload["name"])
            value = int(payload["value"])
            if counter in last and value < last[counter]:
                decreasing += 1
            last[counter] = value
        elif name.startswith("metrics:"):
            counts[name[len("metrics:"):]] += 1
            if name == "metrics:timer":
                timer_ns += int(payload["duration_ns"])
    fields = [f"samples={counts['samples']}", f"decreasing={decreasing}"]
    fields += [f"{kind}={counts[kind]}" for kind in ("fp_counter", "meter", "recorder", "timer")]
    fields += [f"timer_ns={timer_ns}", f"discarded={trace.discarded}"]
    print("bt2: " + " ".join(fields))
    for counter, value in sorted(last.items()):
        print(f"bt2-counter: {value} {counter}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

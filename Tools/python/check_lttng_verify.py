#!/usr/bin/python3
"""Compares what babeltrace2 (bt2) decodes from LTTng-UST and RseqTrace traces with the events a
`rseqtrace demo` run emitted, as the demo wrote them with `--expected-events FILE` (JSON lines:
{"event": name, "fields": {name: value}, "text": rendering}; see RseqTraceFormats' EventJSONLines).

Used by Tools/check-lttng:

    check_lttng_verify.py typed  TRACE EXPECTED
    check_lttng_verify.py filter TRACE EXPECTED EVENT FIELD=VALUE...
    check_lttng_verify.py text   TRACE EXPECTED
    check_lttng_verify.py merge  LTTNG_TRACE OWN_TRACE EXPECTED C_EVENTS OWN_RECORDED

Prints what it found; exits 1 on a mismatch (listing the first ones), 0 otherwise. It knows
nothing of the demo's values: every expected value comes from EXPECTED.
"""
import collections
import json
import sys

import bt2

# The C program's static tracepoint (Tools/lttng-check/lttng_check_tp.h).
PING = "lttng_check:ping"


class Result:
    def __init__(self):
        self.errors = []

    def error(self, text):
        if len(self.errors) < 20:
            self.errors.append(text)
        elif self.errors[-1] != "... more mismatches":
            self.errors.append("... more mismatches")


def load_expected(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def value(field):
    """A bt2 field as the expected-events JSON writes values."""
    if isinstance(field, bt2._StringFieldConst):
        return str(field)
    if isinstance(field, (bt2._UnsignedEnumerationFieldConst, bt2._SignedEnumerationFieldConst)):
        return [field.labels[0] if field.labels else None, int(field)]
    if isinstance(field, bt2._RealFieldConst):
        return float(field)
    if isinstance(field, (bt2._DynamicArrayFieldConst, bt2._StaticArrayFieldConst)):
        return [int(v) for v in field]
    return int(field)


def observed(payload, names, result, where):
    """The values of fields `names` of a bt2 payload. A text field `x` that LTTng-UST writes as a
    sequence has a length field `_x_length`: babeltrace2 2.0.4 shows an empty text sequence with an
    earlier event's value (an upstream bug), so a length of 0 reads as "", and a length that is not
    the text's UTF-8 size is a mismatch."""
    values = {}
    for name in names:
        if name not in payload:
            result.error("%s: no field %s" % (where, name))
            continue
        values[name] = value(payload[name])
        length = "_%s_length" % name
        if length in payload and length not in names and isinstance(values[name], str):
            count = int(payload[length])
            if count == 0:
                values[name] = ""
            elif count != len(values[name].encode()):
                result.error("%s: %s = %d, but %s has %d bytes" % (where, length, count, name, len(values[name].encode())))
    return values


def as_number(v):
    """A Bool as the number 0 or 1: the expected JSON true/false, LTTng-UST's 8-bit integer, and
    RseqTrace's one-byte enumeration "false" = 0, "true" = 1 (read as ["false", 0] / ["true", 1])."""
    if isinstance(v, bool):
        return int(v)
    if v == ["false", 0] or v == ["true", 1]:
        return v[1]
    return v


def key(name, fields):
    fields = {n: as_number(v) for n, v in fields.items()}
    return (name, json.dumps(fields, sort_keys=True, ensure_ascii=False))


def read(paths):
    """(tracer_name, event name, payload, ns from origin) of every event, and the discarded count."""
    out, discarded = [], 0
    for message in bt2.TraceCollectionMessageIterator(paths):
        if isinstance(message, (bt2._DiscardedEventsMessageConst, bt2._DiscardedPacketsMessageConst)):
            discarded += message.count or 1
        if not isinstance(message, bt2._EventMessageConst):
            continue
        event = message.event
        tracer = str(event.stream.trace.environment.get("tracer_name", "?"))
        out.append((tracer, event.name, event.payload_field, message.default_clock_snapshot.ns_from_origin))
    return out, discarded


def compare(result, what, expected, events):
    """Checks that the bt2 `events` are exactly the `expected` ones (as multisets of name + values);
    returns {key: timestamp} of the events seen."""
    names = {}
    for e in expected:
        names.setdefault(e["event"], list(e["fields"]))
    want = collections.Counter(key(e["event"], e["fields"]) for e in expected)
    got = collections.Counter()
    stamps = {}
    for tracer, name, payload, stamp in events:
        if name not in names:
            result.error("%s: unexpected event %s" % (what, name))
            continue
        k = key(name, observed(payload, names[name], result, "%s %s" % (what, name)))
        got[k] += 1
        stamps[k] = stamp
    for k, count in (want - got).items():
        result.error("%s: %d x %s %s expected, not found" % (what, count, k[0], k[1][:300]))
    for k, count in (got - want).items():
        result.error("%s: %d x %s %s found, not expected (or more often than expected)" % (what, count, k[0], k[1][:300]))
    return stamps


def count_by_name(events):
    return ", ".join("%d %s" % (n, name) for name, n in sorted(collections.Counter(e[1] for e in events).items()))


def typed(result, trace, expected_path):
    expected = load_expected(expected_path)
    events, discarded = read([trace])
    compare(result, "typed", expected, events)
    if discarded:
        result.error("LTTng discarded %d events or packets" % discarded)
    print("typed: %s, every field as the demo emitted it, %d discarded" % (count_by_name(events), discarded))


def filtered(result, trace, expected_path, event, conditions):
    """The events LTTng kept with `--filter 'FIELD == VALUE && ...'` on EVENT: exactly the expected
    EVENT events whose fields (an enumeration's value) have these values."""
    wanted = dict((name, int(v)) for name, v in (c.split("=", 1) for c in conditions))

    def number(v):
        return v[1] if isinstance(v, list) else v

    expected = [e for e in load_expected(expected_path)
                if e["event"] == event and all(number(e["fields"][n]) == v for n, v in wanted.items())]
    events, _ = read([trace])
    compare(result, "filter", expected, events)
    if not expected:
        result.error("filter: no expected event passes the filter, so the check proves nothing")
    print("filter: %d %s kept (%s), %d expected" % (len(events), event, " && ".join(conditions), len(expected)))


def text(result, trace, expected_path):
    expected = load_expected(expected_path)
    events, discarded = read([trace])
    want = collections.Counter((e["event"], e["text"]) for e in expected)
    got = collections.Counter()
    for _, name, payload, _ in events:
        if name != "rseqtrace:text":
            result.error("text: unexpected event %s" % name)
            continue
        got[(str(payload["event"]), str(payload["fields"]))] += 1
    for (name, rendering), count in (want - got).items():
        result.error("text: %d x %s %r expected, not found" % (count, name, rendering[:300]))
    for (name, rendering), count in (got - want).items():
        result.error("text: %d x %s %r found, not expected" % (count, name, rendering[:300]))
    if discarded:
        result.error("text: %d events or packets discarded" % discarded)
    print("text: %d rseqtrace:text events (%s), renderings exact" % (
        len(events), ", ".join("%d %s" % (n, name) for name, n in sorted(collections.Counter(k[0] for k in got.elements()).items()))))


def merge(result, lttng_trace, own_trace, expected_path, c_events, own_recorded):
    expected = load_expected(expected_path)
    events, discarded = read([lttng_trace, own_trace])
    stamps = [e[3] for e in events]
    if stamps != sorted(stamps):
        result.error("merged events are not in timestamp order")
    pings = [e for e in events if e[1] == PING]
    if sorted(int(e[2]["seq"]) for e in pings) != list(range(c_events)) or any(e[0] != "lttng-ust" for e in pings):
        result.error("%d %s events from the C program, expected %d" % (len(pings), PING, c_events))
    lttng = [e for e in events if e[0] == "lttng-ust" and e[1] != PING]
    own = [e for e in events if e[0] == "rseqtrace"]
    lttng_time = compare(result, "merge (LTTng-UST)", expected, lttng)
    own_time = compare(result, "merge (RseqTrace)", expected, own)
    if len(own) != own_recorded:
        result.error("%d events from RseqTrace's own trace, its demo recorded %d" % (len(own), own_recorded))
    # The same emit wrote both copies: their timestamps (the cycle counter converted by RseqTrace,
    # CLOCK_MONOTONIC read by LTTng-UST) must agree.
    gaps = sorted(abs(t - lttng_time[k]) for k, t in own_time.items() if k in lttng_time)
    median = gaps[len(gaps) // 2] if gaps else None
    p99 = gaps[int(len(gaps) * 0.99)] if gaps else None
    if not gaps or median > 100_000 or p99 > 20_000_000:
        result.error("own vs LTTng timestamps of the same events: median gap %s ns, 99th percentile %s ns" % (median, p99))
    if discarded:
        result.error("%d events or packets discarded" % discarded)
    print("merge: one babeltrace2 run, %d events: %d %s (C), %d via LTTng-UST, %d from RseqTrace's CTF; "
          "same-event timestamp gap median %s ns, 99%% < %s ns" % (len(events), len(pings), PING, len(lttng), len(own), median, p99))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    mode, args = argv[1], argv[2:]
    result = Result()
    if mode == "typed" and len(args) == 2:
        typed(result, args[0], args[1])
    elif mode == "filter" and len(args) >= 4:
        filtered(result, args[0], args[1], args[2], args[3:])
    elif mode == "text" and len(args) == 2:
        text(result, args[0], args[1])
    elif mode == "merge" and len(args) == 5:
        merge(result, args[0], args[1], args[2], int(args[3]), int(args[4]))
    else:
        sys.exit(__doc__)
    for line in result.errors:
        print("  mismatch: " + line, file=sys.stderr)
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

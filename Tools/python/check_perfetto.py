#!/usr/bin/env python3
"""Decode a Perfetto protobuf trace written by `rseqtrace export --format perfetto`, independently
of the Swift encoder: protoc compiles Tools/perfetto/perfetto_trace_subset.proto (the public field
numbers) and python3-protobuf parses the file.

Usage: check_perfetto.py TRACE.pftrace

Checks that every interned id an event uses was defined earlier on its sequence, that every event's
track was described, and that slices nest on each track (an end closes the innermost open begin).
Prints per-thread lines, then one summary line:
  thread: pid=<n> tid=<n> name=<name> instants=<n> slices=<n>
  perfetto: packets=<n> processes=<n> thread_tracks=<n> instants=<n> slices=<n> unfinished=<n>
            counters=<n> counter_tracks=<n> unresolved=<n> unknown_tracks=<n> nesting_errors=<n>
(on one line). Exit status 0 when it could decode the file, 2 otherwise.
"""
import collections
import importlib
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(ROOT, "Tools", "perfetto")
PROTO = "perfetto_trace_subset.proto"


def load_module(workdir):
    subprocess.run(["protoc", f"--proto_path={PROTO_DIR}", f"--python_out={workdir}", PROTO], check=True)
    sys.path.insert(0, workdir)
    return importlib.import_module(PROTO.replace(".proto", "_pb2"))


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as workdir:
        try:
            module = load_module(workdir)
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"check_perfetto: cannot compile {PROTO} with protoc: {error}", file=sys.stderr)
            return 2
        trace = module.Trace()
        with open(sys.argv[1], "rb") as handle:
            trace.ParseFromString(handle.read())
    names, categories, annotation_names = {}, {}, {}
    tracks = {}
    processes = set()
    threads = {}
    counter_tracks = set()
    counts = collections.Counter()
    per_thread = collections.defaultdict(collections.Counter)
    open_slices = collections.defaultdict(list)
    TrackEvent = module.TrackEvent
    for packet in trace.packet:
        counts["packets"] += 1
        if packet.sequence_flags & 1:
            names.clear(); categories.clear(); annotation_names.clear()
        if packet.HasField("interned_data"):
            data = packet.interned_data
            for entry in data.event_names:
                names[entry.iid] = entry.name
            for entry in data.event_categories:
                categories[entry.iid] = entry.name
            for entry in data.debug_annotation_names:
                annotation_names[entry.iid] = entry.name
        if packet.HasField("track_descriptor"):
            descriptor = packet.track_descriptor
            tracks[descriptor.uuid] = descriptor
            if descriptor.HasField("process"):
                processes.add(descriptor.process.pid)
            if descriptor.HasField("thread"):
                threads[descriptor.uuid] = descriptor.thread
            if descriptor.HasField("counter"):
                counter_tracks.add(descriptor.uuid)
        if not packet.HasField("track_event"):
            continue
        event = packet.track_event
        if event.track_uuid not in tracks:
            counts["unknown_tracks"] += 1
        for iid in event.category_iids:
            if iid not in categories:
                counts["unresolved"] += 1
        for annotation in event.debug_annotations:
            if annotation.name_iid not in annotation_names:
                counts["unresolved"] += 1
        if event.HasField("name_iid") and event.name_iid not in names:
            counts["unresolved"] += 1
        name = names.get(event.name_iid, "?")
        thread = threads.get(event.track_uuid)
        if event.type == TrackEvent.TYPE_INSTANT:
            counts["instants"] += 1
            if thread is not None:
                per_thread[event.track_uuid]["instants"] += 1
        elif event.type == TrackEvent.TYPE_SLICE_BEGIN:
            open_slices[event.track_uuid].append((packet.timestamp, name))
        elif event.type == TrackEvent.TYPE_SLICE_END:
            stack = open_slices[event.track_uuid]
            if not stack or stack[-1][0] > packet.timestamp:
                counts["nesting_errors"] += 1
                continue
            stack.pop()
            if name != "?":
                counts["nesting_errors"] += 1   # an end names nothing: it closes the innermost begin
            counts["slices"] += 1
            if thread is not None:
                per_thread[event.track_uuid]["slices"] += 1
        elif event.type == TrackEvent.TYPE_COUNTER:
            counts["counters"] += 1
            if event.track_uuid not in counter_tracks:
                counts["unknown_tracks"] += 1
    unfinished = sum(len(stack) for stack in open_slices.values())
    for uuid, thread in sorted(threads.items(), key=lambda item: (item[1].pid, item[1].tid)):
        print(f"thread: pid={thread.pid} tid={thread.tid} name={thread.thread_name.replace(' ', '_')} "
              f"instants={per_thread[uuid]['instants']} slices={per_thread[uuid]['slices']}")
    print(f"perfetto: packets={counts['packets']} processes={len(processes)} thread_tracks={len(threads)} "
          f"instants={counts['instants']} slices={counts['slices'] + unfinished} unfinished={unfinished} "
          f"counters={counts['counters']} counter_tracks={len(counter_tracks)} unresolved={counts['unresolved']} "
          f"unknown_tracks={counts['unknown_tracks']} nesting_errors={counts['nesting_errors']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

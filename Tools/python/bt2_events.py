"""The events of a trace read with babeltrace2's Python bindings (bt2), independently of RseqTrace's
reader, for the checkers in this directory.

    trace = TraceEvents(directory)
    for event in trace:       # each event, in the order bt2's muxer delivers them
        ...
    trace.discarded           # the discarded-event counts bt2 reported, summed (unknown counts as 0)
"""
import bt2


class TraceEvents:
    """Iterates the events of the trace in `directory`, summing the discarded-event counts seen."""

    def __init__(self, directory: str):
        self.directory = directory
        self.discarded = 0

    def __iter__(self):
        for message in bt2.TraceCollectionMessageIterator(self.directory):
            if type(message) is bt2._DiscardedEventsMessageConst:
                self.discarded += message.count or 0
            elif type(message) is bt2._EventMessageConst:
                yield message.event

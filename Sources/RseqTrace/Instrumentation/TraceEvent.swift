/// An event type declared with the `@TraceEvent` macro (module `RseqTraceMacros`): its stored
/// properties are the fields.
public protocol TraceEvent {
    /// Whether emitting does anything (one load when the event has been seen before).
    static var isEnabled: Bool { get }
    /// Writes this event.
    func emit()
}

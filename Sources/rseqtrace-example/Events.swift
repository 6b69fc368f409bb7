import RseqTrace

/// `example:work`: one unit of work done by a worker. A global, so it is statically initialised and
/// a disabled check costs one load.
let workDone = Tracepoint3<UInt32, UInt64, UInt64>("example:work", fields: "worker iteration value")

import RseqTrace

/// `example:work`: one unit of work done by a worker. A global, so it is statically initialised and
/// a disabled check costs one load.
let workDone = Tracepoint3<UInt32, UInt64, UInt64>("example:work", fields: "worker iteration value")

/// `example:worker`: a worker's index and its thread id (`gettid`), recorded once by each worker
/// with `--spans`, so a reader can check each event's thread against what the thread said of itself.
let workerStarted = Tracepoint2<UInt32, Int64>("example:worker", fields: "worker tid")

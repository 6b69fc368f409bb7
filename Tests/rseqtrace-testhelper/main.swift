#if canImport(Glibc)
import Glibc
import RseqTraceSupport
#endif

// rseqtrace-testhelper: the out-of-process half of the stress tests (Tests/RseqTraceTests/
// ProcessStressTests.swift). Subcommands print one machine-readable `key=value` line on stdout;
// diagnostics go to stderr. Exit status: 0 success, 1 verification failed, 2 usage, 3 setup error.

let usage = """
    usage: rseqtrace-testhelper <command> [options]
      \(StressCommand.usage)
      \(AttachWriteCommand.usage)
      \(SingleStepTargetCommand.usage)
      \(DieMidRecordCommand.usage)
      \(KeepWritingCommand.usage)
      \(SpawnWriteCommand.usage)
      \(InstrumentedCommand.usage)
      \(HostileProducerCommand.usage)
      \(StormCommand.usage)
      \(StuckCommand.usage)
      \(FallbackWriteCommand.usage)
      \(EmitUntilSignalCommand.usage)
      \(ForkWriteCommand.usage)
      \(CountersCommand.usage)
      \(DlopenPluginCommand.usage)
      mode
    """

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    printError(usage)
    finish(2)
}
let rest = arguments.dropFirst(2)
do {
    switch arguments[1] {
    case "stress": finish(try StressCommand.run(rest))
    case "attach-write": finish(try AttachWriteCommand.run(rest))
    case "singlestep-target": finish(try SingleStepTargetCommand.run(rest))
    case "die-mid-record": finish(try DieMidRecordCommand.run(rest))
    case "keep-writing": finish(try KeepWritingCommand.run(rest))
    case "spawn-write": finish(try SpawnWriteCommand.run(rest))
    case "instrumented": finish(try InstrumentedCommand.run(rest))
    case "hostile-producer": finish(try HostileProducerCommand.run(rest))
    case "storm": finish(try StormCommand.run(rest))
    case "stuck": finish(try StuckCommand.run(rest))
    case "fallback-write": finish(try FallbackWriteCommand.run(rest))
    case "emit-until-signal": finish(try EmitUntilSignalCommand.run(rest))
    case "fork-write": finish(try ForkWriteCommand.run(rest))
    case "counters": finish(try CountersCommand.run(rest))
    case "dlopen-plugin": finish(try DlopenPluginCommand.run(rest))
    case "mode": finish(ModeCommand.run())
    case "help", "--help", "-h":
        print(usage)
        finish(0)
    default:
        printError("unknown command '\(arguments[1])'\n\(usage)")
        finish(2)
    }
} catch {
    printError("error: \(error.message)\n\(usage)")
    finish(2)
}

import RseqTrace

/// A command with `--enable` and `--disable` options (`record`, `attach`).
protocol EventRuleOptions {
    var enabled: [String] { get }
    var disabled: [String] { get }
    /// Whether, without --enable/--disable, the traced program gets this process's RSEQTRACE_EVENTS
    /// (`record` starts it with this environment; `attach` reaches a program already running).
    static var inheritsEnvironment: Bool { get }
}

/// The rule list a command passes to the program (`RSEQTRACE_EVENTS` for `record`, the attach
/// request for `attach`): its --enable and --disable values in the order given on the command
/// line, each a comma-separated list of patterns.
extension EventRuleOptions {
    /// The rule list for the program (checked), `nil` when it keeps its own rules.
    /// - Throws: `.invalidConfiguration` for a malformed pattern, or a malformed inherited
    ///   RSEQTRACE_EVENTS when no --enable/--disable is given.
    func eventRuleList(arguments: [String] = CommandLine.arguments) throws(TraceError) -> String? {
        guard !enabled.isEmpty || !disabled.isEmpty else {
            if Self.inheritsEnvironment, let inherited = SystemInfo.environmentValue(TraceRuntime.eventsVariable) {
                do throws(TraceError) {
                    _ = try EventRules(parsing: inherited)
                } catch {
                    throw TraceError(.invalidConfiguration, """
                        \(TraceRuntime.eventsVariable) in the environment is malformed (\(error.message)); \
                        fix or unset it, or choose events with --enable/--disable
                        """)
                }
            }
            return nil
        }
        let given = Self.enableDisableValues(in: arguments)
        // The options as parsed, in case the command line is not the one ArgumentParser read.
        guard given.filter(\.enable).map(\.value) == enabled, given.filter({ !$0.enable }).map(\.value) == disabled else {
            throw TraceError(.invalidConfiguration, """
                cannot tell the order of --enable and --disable on this command line; \
                write each as '--enable PATTERNS' or '--enable=PATTERNS' before '--'
                """)
        }
        var rules: [String] = []
        for (value, enable) in given {
            for item in value.split(separator: ",", omittingEmptySubsequences: false) {
                var pattern = String(item.drop(while: \.isWhitespace))
                while pattern.last?.isWhitespace == true { pattern.removeLast() }
                do throws(TraceError) {
                    _ = try EventPattern(pattern)
                } catch {
                    throw TraceError(.invalidConfiguration, "--\(enable ? "enable" : "disable") '\(value)': \(error.message)")
                }
                rules.append((enable ? "" : "-") + pattern)
            }
        }
        let specification = rules.joined(separator: ",")
        _ = try EventRules(parsing: specification)
        return specification
    }

    /// The values of `--enable` and `--disable` in `arguments` (argv), in order, up to `--`.
    static func enableDisableValues(in arguments: [String]) -> [(value: String, enable: Bool)] {
        var values: [(value: String, enable: Bool)] = []
        var index = 1
        while index < arguments.count, arguments[index] != "--" {
            let argument = arguments[index]
            index += 1
            for (name, enable) in [("--enable", true), ("--disable", false)] {
                if argument == name, index < arguments.count {
                    values.append((arguments[index], enable))
                    index += 1
                } else if argument.hasPrefix(name + "=") {
                    values.append((String(argument.dropFirst(name.count + 1)), enable))
                }
            }
        }
        return values
    }
}

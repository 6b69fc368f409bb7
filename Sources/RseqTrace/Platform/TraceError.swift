import SystemPackage

/// Everything that can go wrong while setting up, attaching to or reading a trace buffer.
///
/// The producer fast path never throws: it drops and counts. Errors come from setup (creating or
/// validating a shared object) and from readers.
public struct TraceError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A stable classification of the failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Wrapped: Hashable, Sendable {
            case invalidConfiguration, invalidName, alreadyExists, notFound, permissionDenied
            case notATraceObject, unsupportedVersion, corrupted, systemCallFailed
        }
        let wrapped: Wrapped
        public static let invalidConfiguration = Code(wrapped: .invalidConfiguration)
        public static let invalidName = Code(wrapped: .invalidName)
        public static let alreadyExists = Code(wrapped: .alreadyExists)
        public static let notFound = Code(wrapped: .notFound)
        public static let permissionDenied = Code(wrapped: .permissionDenied)
        public static let notATraceObject = Code(wrapped: .notATraceObject)
        public static let unsupportedVersion = Code(wrapped: .unsupportedVersion)
        public static let corrupted = Code(wrapped: .corrupted)
        public static let systemCallFailed = Code(wrapped: .systemCallFailed)
        public var description: String { "\(wrapped)" }
    }

    public var code: Code
    /// What failed, where, and what to do about it.
    public var message: String
    /// The underlying system error, when a system call failed.
    public var errno: Errno?

    public init(_ code: Code, _ message: String, errno: Errno? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    public var description: String {
        if let errno { return "\(message) (\(errno))" }
        return message
    }
}

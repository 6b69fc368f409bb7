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
        /// A configuration or geometry that cannot work (sizes, indexing, mode, attachment limits).
        public static let invalidConfiguration = Code(wrapped: .invalidConfiguration)
        /// A trace name that is empty, too long or has characters outside `A-Z a-z 0-9 . _ -`.
        public static let invalidName = Code(wrapped: .invalidName)
        /// A trace object of that name already exists.
        public static let alreadyExists = Code(wrapped: .alreadyExists)
        /// No trace object (or file) of that name.
        public static let notFound = Code(wrapped: .notFound)
        /// A symlink, a file of another user, or a file other users can access.
        public static let permissionDenied = Code(wrapped: .permissionDenied)
        /// The file is not a trace object (wrong magic, not a regular file, too small).
        public static let notATraceObject = Code(wrapped: .notATraceObject)
        /// A trace object of another layout version.
        public static let unsupportedVersion = Code(wrapped: .unsupportedVersion)
        /// An inconsistent header or a damaged record.
        public static let corrupted = Code(wrapped: .corrupted)
        /// A system call failed (see ``TraceError/errno``).
        public static let systemCallFailed = Code(wrapped: .systemCallFailed)
        /// The code's name, such as `notFound`.
        public var description: String { "\(wrapped)" }
    }

    /// What kind of failure this is.
    public var code: Code
    /// What failed, where, and what to do about it.
    public var message: String
    /// The underlying system error, when a system call failed.
    public var errno: Errno?

    /// An error of kind `code` saying `message`, with the system error behind it if any.
    public init(_ code: Code, _ message: String, errno: Errno? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    /// The message, followed by the system error when there is one.
    public var description: String {
        if let errno { return "\(message) (\(errno))" }
        return message
    }
}

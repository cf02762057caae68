import Foundation

/// Where a stage run reports the model's answer as it arrives: text deltas, in order, whose
/// concatenation is the answer's raw text. Network providers are asked to stream when a sink is
/// given; an answer that arrives whole (the embedded provider, a cache hit) is one delta. When a
/// failed attempt is retried, `restart` says to drop the text received so far. A reused
/// generation reports nothing (no model is called). Handlers must return quickly: they run on
/// the task that reads the provider's answer.
public struct ProgressSink: Sendable, Hashable {
    public enum Event: Sendable, Hashable {
        case text(String)
        /// The attempt that sent the text so far failed and is retried: discard that text.
        case restart
    }

    /// Identity: two sinks are equal only when they are the same sink.
    let id = UUID()
    public let handler: @Sendable (Event) -> Void

    public init(_ handler: @escaping @Sendable (Event) -> Void) {
        self.handler = handler
    }

    public static func == (left: ProgressSink, right: ProgressSink) -> Bool { left.id == right.id }

    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
}

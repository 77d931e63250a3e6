import Foundation
import SparrowAPI
import SparrowEngine

/// Request counters and latency histograms, rendered in the Prometheus text format at
/// `GET /metrics` together with the scheduler's gauges (queue depth, active sequences) and
/// token counters (prompt, cached prompt, completion).
final class ServerMetrics: @unchecked Sendable {
    /// Upper bounds (seconds) of the latency histogram buckets.
    static let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]

    private struct Histogram {
        var counts = [Int](repeating: 0, count: ServerMetrics.buckets.count)
        var sum = 0.0
        var total = 0
        mutating func observe(_ v: Double) {
            for (i, b) in ServerMetrics.buckets.enumerated() where v <= b { counts[i] += 1 }
            sum += v
            total += 1
        }
    }

    private let lock = NSLock()
    private var requests: [String: Int] = [:]  // "endpoint|status" → count
    private var latency: [String: Histogram] = [:]  // endpoint → seconds
    private var ttft = Histogram()
    private var inFlight = 0

    func started() {
        lock.lock(); inFlight += 1; lock.unlock()
    }

    /// Records a finished request.
    func finished(endpoint: String, status: Int, seconds: Double) {
        lock.lock()
        inFlight -= 1
        requests["\(endpoint)|\(status)", default: 0] += 1
        latency[endpoint, default: Histogram()].observe(seconds)
        lock.unlock()
    }

    func observeTimeToFirstToken(_ seconds: Double) {
        lock.lock(); ttft.observe(seconds); lock.unlock()
    }

    func render(scheduler s: SchedulerStats) -> String {
        lock.lock()
        defer { lock.unlock() }
        var out = ""
        out += "# HELP sparrow_requests_total HTTP requests answered, by endpoint and status.\n# TYPE sparrow_requests_total counter\n"
        for key in requests.keys.sorted() {
            let parts = key.split(separator: "|", maxSplits: 1)
            out += "sparrow_requests_total{endpoint=\"\(parts[0])\",status=\"\(parts.count > 1 ? parts[1] : "")\"} \(requests[key] ?? 0)\n"
        }
        out += "# HELP sparrow_requests_in_flight HTTP requests being handled.\n# TYPE sparrow_requests_in_flight gauge\nsparrow_requests_in_flight \(inFlight)\n"
        out += "# HELP sparrow_request_duration_seconds Time from request to the end of the response.\n# TYPE sparrow_request_duration_seconds histogram\n"
        for endpoint in latency.keys.sorted() {
            if let h = latency[endpoint] { out += Self.render(h, name: "sparrow_request_duration_seconds", labels: "endpoint=\"\(endpoint)\",") }
        }
        out += "# HELP sparrow_time_to_first_token_seconds Time from request to the first generated token.\n# TYPE sparrow_time_to_first_token_seconds histogram\n"
        out += Self.render(ttft, name: "sparrow_time_to_first_token_seconds", labels: "")
        out += "# HELP sparrow_queue_depth Requests waiting for a sequence slot.\n# TYPE sparrow_queue_depth gauge\nsparrow_queue_depth \(s.queued)\n"
        out += "# HELP sparrow_active_sequences Sequences in the running batch.\n# TYPE sparrow_active_sequences gauge\nsparrow_active_sequences \(s.active)\n"
        out += "# HELP sparrow_prompt_tokens_total Prompt tokens of admitted requests.\n# TYPE sparrow_prompt_tokens_total counter\nsparrow_prompt_tokens_total \(s.promptTokens)\n"
        out += "# HELP sparrow_prompt_tokens_cached_total Prompt tokens served from the prefix cache (prefix-cache hits).\n# TYPE sparrow_prompt_tokens_cached_total counter\nsparrow_prompt_tokens_cached_total \(s.cachedPromptTokens)\n"
        out += "# HELP sparrow_prompt_tokens_restored_total Prompt tokens copied back from stored prefix blocks (part of the cached total).\n# TYPE sparrow_prompt_tokens_restored_total counter\nsparrow_prompt_tokens_restored_total \(s.prefixCacheRestoredTokens)\n"
        out += "# HELP sparrow_prefix_cache_bytes Bytes of keys/values the prefix cache holds.\n# TYPE sparrow_prefix_cache_bytes gauge\nsparrow_prefix_cache_bytes \(s.prefixCacheBytes)\n"
        out += "# HELP sparrow_prefix_cache_blocks Token blocks the prefix cache holds.\n# TYPE sparrow_prefix_cache_blocks gauge\nsparrow_prefix_cache_blocks \(s.prefixCacheBlocks)\n"
        out += "# HELP sparrow_completion_tokens_total Generated tokens.\n# TYPE sparrow_completion_tokens_total counter\nsparrow_completion_tokens_total \(s.completionTokens)\n"
        out += "# HELP sparrow_forward_steps_total Batched forward steps.\n# TYPE sparrow_forward_steps_total counter\nsparrow_forward_steps_total \(s.steps)\n"
        out += "# HELP sparrow_batched_sequences_total Sequences summed over forward steps (divide by steps for the mean batch).\n# TYPE sparrow_batched_sequences_total counter\nsparrow_batched_sequences_total \(s.batchedSequences)\n"
        return out
    }

    private static func render(_ h: Histogram, name: String, labels: String) -> String {
        var out = ""
        for (i, b) in buckets.enumerated() { out += "\(name)_bucket{\(labels)le=\"\(b)\"} \(h.counts[i])\n" }
        out += "\(name)_bucket{\(labels)le=\"+Inf\"} \(h.total)\n"
        let l = labels.isEmpty ? "" : "{\(labels.dropLast())}"
        out += "\(name)_sum\(l) \(h.sum)\n\(name)_count\(l) \(h.total)\n"
        return out
    }
}

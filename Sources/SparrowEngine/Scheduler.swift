import Foundation
import SparrowKernels
import SparrowModels
import SparrowSampling
import SparrowTokenizer

/// Continuous batching over one engine.
///
/// A single loop thread owns the model: each step it admits waiting jobs into free sequence
/// slots, then runs one `forwardBatch` that serves every active sequence — a decoding sequence
/// contributes the token it sampled last, a prefilling one a chunk of its prompt — samples the
/// sequences whose prompt is done, and streams their tokens out. Jobs join and leave between
/// steps. Slots keep their keys/values after a job ends, so a later prompt with the same
/// prefix (a shared system prompt, the earlier turns of a chat) recomputes only the rest.
public final class Scheduler: @unchecked Sendable {
    public let engine: Engine
    public let configuration: SchedulerConfiguration

    private let lock = NSCondition()
    // Guarded by `lock`:
    private var queue: [Job] = []
    private var cancelled: Set<UInt64> = []
    private var accepting = true
    private var stopped = false
    private var nextID: UInt64 = 0
    private var stats = SchedulerStats(queued: 0, active: 0, promptTokens: 0, cachedPromptTokens: 0,
                                       completionTokens: 0, steps: 0, batchedSequences: 0)
    // Owned by the loop thread:
    private var slots: [Slot]
    /// Keys/values of prefixes the slots have moved on from (nil when off).
    private let prefixCache: PrefixCache?
    private var active: [Job] = []
    private var clock: UInt64 = 0
    private var thread: Thread?
    private let finishedLoop = DispatchSemaphore(value: 0)

    public init(engine: Engine, configuration: SchedulerConfiguration = SchedulerConfiguration()) throws(EngineError) {
        try configuration.validate()
        self.engine = engine
        self.configuration = configuration
        slots = (0..<configuration.effectiveCacheSlots).map { _ in
            Slot(cache: engine.model.makeCache(capacity: engine.contextLength, type: engine.kvCacheType))
        }
        let rowsOnly = slots.first?.cache.recurrent == nil
        prefixCache = configuration.prefixCacheBytes > 0 && rowsOnly ? PrefixCache(capacityBytes: configuration.prefixCacheBytes) : nil
        // The loop keeps the scheduler alive until `shutdown()` ends it (a scheduler dropped
        // without shutting down leaks its thread rather than crashing it).
        let t = Thread { self.loop() }
        t.name = "sparrow-scheduler"
        t.stackSize = 8 << 20
        thread = t
        t.start()
    }

    /// Queues a job. Throws `.queueFull` when `queueCapacity` jobs already wait,
    /// `.shuttingDown` after `shutdown()`, and parameter errors before anything is queued.
    public func submit(_ job: GenerationJob) throws(EngineError) -> GenerationHandle {
        guard !job.prompt.isEmpty else { throw .invalidParameter("the prompt is empty (no tokens)") }
        guard job.parameters.maxTokens >= 0 else { throw .invalidParameter("max_tokens \(job.parameters.maxTokens) must be ≥ 0") }
        do { try job.parameters.sampling.validate() } catch { throw .sampling(error) }
        guard job.prompt.count < engine.contextLength else {
            throw .promptTooLong(promptTokens: job.prompt.count, context: engine.contextLength)
        }
        let vocab = engine.model.config.vocabularySize
        if let bad = job.prompt.first(where: { $0 < 0 || Int($0) >= vocab }) {
            throw .invalidParameter("prompt token id \(bad) is outside the vocabulary 0..<\(vocab)")
        }
        let (stream, continuation) = AsyncStream<GenerationEvent>.makeStream(bufferingPolicy: .unbounded)
        lock.lock()
        defer { lock.unlock() }
        guard accepting else { throw .shuttingDown }
        // Free slots absorb jobs at once, so only the excess counts against the queue.
        let waiting = queue.count - max(0, configuration.maxSequences - stats.active)
        guard waiting < configuration.queueCapacity else { throw .queueFull(capacity: configuration.queueCapacity) }
        nextID += 1
        let id = nextID
        let seq = Job(id: id, job: job, continuation: continuation, tokenizer: engine.tokenizer)
        queue.append(seq)
        stats.queued = queue.count
        lock.signal()
        let handle = GenerationHandle(id: id, events: stream, scheduler: self)
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.cancel(id) }
        }
        return handle
    }

    /// Abandons a job (a client went away): it leaves its slot at the next step boundary and
    /// its stream ends without a `finished` event.
    public func cancel(_ id: UInt64) {
        lock.lock()
        cancelled.insert(id)
        lock.signal()
        lock.unlock()
    }

    /// Counters and gauges for metrics.
    public func snapshot() -> SchedulerStats {
        lock.lock()
        defer { lock.unlock() }
        return stats
    }

    /// Stops taking jobs, lets queued and running ones finish, then ends the loop thread.
    public func shutdown() {
        lock.lock()
        let wasAccepting = accepting
        accepting = false
        lock.signal()
        lock.unlock()
        if wasAccepting { finishedLoop.wait() }
    }

    // MARK: - The loop

    private func loop() {
        while true {
            lock.lock()
            while queue.isEmpty && active.isEmpty && cancelled.isEmpty && accepting { lock.wait() }
            if !accepting && queue.isEmpty && active.isEmpty {
                stopped = true
                lock.unlock()
                finishedLoop.signal()
                return
            }
            let cancelNow = cancelled
            cancelled = []
            queue.removeAll { seq in
                guard cancelNow.contains(seq.id) else { return false }
                seq.continuation.finish()
                return true
            }
            var admitted: [Job] = [], deferred: [Job] = []
            while active.count + admitted.count < configuration.maxSequences, !queue.isEmpty {
                let next = queue.removeFirst()
                if awaitsSharedPrefix(next, computedBy: active + admitted) { deferred.append(next) } else { admitted.append(next) }
            }
            queue.insert(contentsOf: deferred, at: 0)
            stats.queued = queue.count
            // Counted as active at once: `submit` must not see a job that left the queue as a free slot.
            stats.active = active.filter { !$0.done }.count + admitted.count
            lock.unlock()

            for seq in active where cancelNow.contains(seq.id) { end(seq, nil) }
            active.removeAll { $0.done }
            for seq in admitted { admit(seq) }
            let now = monotonicSeconds()
            for seq in active where seq.deadline.map({ now > $0 }) ?? false {
                end(seq, .failed(.timedOut(seconds: seq.job.timeout ?? 0)))
            }
            active.removeAll { $0.done }
            publishActiveCount()
            guard !active.isEmpty else { continue }
            step()
            // Sampling is done and the tokens are out: the HTTP side now needs the cores the
            // workers would spin on until the next step.
            Parallel.rest()
            active.removeAll { $0.done }
            publishActiveCount()
        }
    }

    private func publishActiveCount() {
        lock.lock()
        stats.active = active.count
        lock.unlock()
    }

    /// Whether `seq` should wait a step or more for a running job still prefilling a prompt it
    /// shares at least `minPrefixCopy` more tokens of than any slot holds now: once computed,
    /// `admit` copies that prefix instead of computing it again. Requests that arrive together
    /// with the same system prompt (or the same few-shot examples) then prefill it once.
    /// Hybrid models keep their recurrent state only at saved positions, so they never wait.
    private func awaitsSharedPrefix(_ seq: Job, computedBy others: [Job]) -> Bool {
        let prompt = seq.job.prompt
        let limit = prompt.count - 1
        guard limit >= configuration.minPrefixCopy, slots.first?.cache.recurrent == nil else { return false }
        func shared(_ tokens: [Int32]) -> Int { Self.sharedPrefix(tokens, prompt, limit: limit) }
        let available = slots.map { shared($0.tokens) }.max() ?? 0
        return others.contains { other in
            guard !other.done, !other.decoding else { return false }
            let s = shared(other.job.prompt)
            return s >= available + configuration.minPrefixCopy && (other.slot?.tokens.count ?? 0) < s
        }
    }

    /// How many leading tokens `tokens` and `prompt` share, at most `limit`.
    private static func sharedPrefix(_ tokens: [Int32], _ prompt: [Int32], limit: Int) -> Int {
        var n = 0
        let m = min(limit, tokens.count, prompt.count)
        while n < m && tokens[n] == prompt[n] { n += 1 }
        return n
    }

    /// Gives a job the free slot whose cached tokens share the longest prefix with its prompt,
    /// then extends that prefix with a longer one copied from another slot and with blocks
    /// from the prefix cache; the slot's own blocks past its match are saved to the prefix
    /// cache before they are overwritten.
    private func admit(_ seq: Job) {
        let prompt = seq.job.prompt
        // Always recompute at least the last prompt token: its logits start the generation.
        let limit = prompt.count - 1
        func common(_ s: Slot) -> Int {
            // A hybrid model's cache goes back only to a saved state.
            s.cache.restorablePrefix(Self.sharedPrefix(s.tokens, prompt, limit: limit))
        }
        clock += 1
        let free = slots.filter { !$0.busy }
        // There is always a free slot: at most maxSequences are busy and there are at least as many slots.
        guard var target = free.first else { end(seq, .failed(.invalidParameter("no free sequence slot"))); return }
        var best = -1
        for s in free {
            let c = common(s)
            if c > best || (c == best && s.lastUsed < target.lastUsed) { best = c; target = s }
        }
        if best == 0, let lru = free.min(by: { $0.lastUsed < $1.lastUsed }) { target = lru }
        // The longest prefix anything holds: the target itself, another slot (copied), or
        // stored blocks continuing either (copied back).
        var donor: Slot?
        var base = best
        if let (d, c) = slots.lazy.filter({ $0 !== target }).map({ ($0, common($0)) }).max(by: { $0.1 < $1.1 }),
           c >= best + configuration.minPrefixCopy {
            donor = d
            base = c
        }
        var stored = base
        if let store = prefixCache {
            let end = store.extent(of: prompt, fromBlock: base / store.blockTokens, limit: limit)
            if end >= base + configuration.minPrefixCopy { stored = end }
        }
        // What the target held past its own match is about to go: keep its prompt's full blocks
        // (a reply's tokens are rarely sent back verbatim, and keeping them would fill the
        // cache with one-off text).
        if let store = prefixCache, target.tokens.count > best {
            let kept = Array(target.tokens.prefix(target.promptTokens))
            store.save(target.cache, tokens: kept, fromBlock: best / store.blockTokens)
        }
        var reused = best
        if let donor, target.cache.copyPrefix(from: donor.cache, count: base) {
            target.tokens = Array(donor.tokens[..<base])
            reused = base
        }
        if let store = prefixCache, stored > reused,
           store.restore(into: target.cache, prompt: prompt, fromBlock: reused / store.blockTokens, end: stored) {
            target.tokens = Array(prompt[..<stored])
            reused = stored
        }
        reused = target.cache.truncate(to: reused)
        target.tokens.removeLast(target.tokens.count - reused)
        // Keep the recurrent state before the last prompt token for a later request sharing the prompt.
        target.cache.requestSnapshot(at: prompt.count - 1)
        target.busy = true
        target.lastUsed = clock
        target.promptTokens = prompt.count
        seq.slot = target
        seq.cachedPromptTokens = reused
        seq.feed = Array(prompt[reused...])
        for t in prompt { seq.sampler.accept(t) }
        active.append(seq)
        lock.lock()
        stats.promptTokens += prompt.count
        stats.cachedPromptTokens += reused
        if let store = prefixCache {
            stats.prefixCacheBytes = store.byteCount
            stats.prefixCacheBlocks = store.blockCount
            stats.prefixCacheRestoredTokens = store.restoredTokens
        }
        lock.unlock()
    }

    /// One forward pass over every active sequence, then sampling for those past their prompt.
    private func step() {
        var budget = configuration.prefillChunk
        var batch: [(job: Job, slot: Slot, tokens: [Int32])] = []
        // Decoding sequences first (one token each), then prompt chunks within the budget.
        for seq in active where seq.decoding {
            if let slot = seq.slot { batch.append((seq, slot, seq.feed)) }
        }
        for seq in active where !seq.decoding {
            guard let slot = seq.slot else { continue }
            let n = min(seq.feed.count, budget)
            if n == 0 && !batch.isEmpty { continue }
            let take = max(n, 1)
            batch.append((seq, slot, Array(seq.feed[..<take])))
            budget -= take
        }
        let logits: [[Float]]
        do {
            logits = try engine.model.forwardBatch(batch.map { BatchSequence(tokens: $0.tokens, cache: $0.slot.cache) })
        } catch {
            for (seq, slot, _) in batch {
                slot.cache.truncate(to: 0)
                slot.tokens = []
                end(seq, .failed(.model(error)))
            }
            return
        }
        var generated = 0
        for ((seq, slot, fed), l) in zip(batch, logits) {
            slot.tokens += fed
            seq.feed.removeFirst(fed.count)
            guard seq.feed.isEmpty else { continue }  // still prefilling: these logits are not needed
            generated += sample(seq, logits: l, slot: slot) ? 1 : 0
        }
        lock.lock()
        stats.steps += 1
        stats.batchedSequences += batch.count
        stats.completionTokens += generated
        lock.unlock()
    }

    /// Picks the next token of `seq` and emits it; ends the sequence on EOG, a stop string,
    /// max_tokens or a full context. Returns whether a token was generated.
    private func sample(_ seq: Job, logits: [Float], slot: Slot) -> Bool {
        let p = seq.job.parameters
        if seq.generated >= p.maxTokens {
            finishNormally(seq, .length)
            return false
        }
        var token: Int32
        if var c = seq.constraint, c.isActive {
            var masked = logits
            c.mask(&masked)
            token = seq.sampler.sample(masked)
            c.accept(token)
            seq.constraint = c
        } else {
            token = seq.sampler.sample(logits)
        }
        if engine.tokenizer.endOfGenerationTokens.contains(token) && !p.ignoreEndOfGeneration {
            finishNormally(seq, .stop)
            return false
        }
        seq.generated += 1
        if seq.firstTokenTime == nil { seq.firstTokenTime = monotonicSeconds() }
        seq.sampler.accept(token)
        let text = seq.text.append(token)
        var out = GeneratedToken(id: token, text: text, logprob: nil, topLogprobs: [])
        if let k = seq.job.topLogprobs {
            let (chosen, top) = Logprobs.compute(logits, token: token, top: k, tokenizer: engine.tokenizer)
            out.logprob = chosen
            out.topLogprobs = top
        }
        seq.continuation.yield(.token(out))
        if seq.text.stopped {
            finishNormally(seq, .stop)
        } else if seq.generated >= p.maxTokens || slot.tokens.count >= slot.cache.capacity {
            finishNormally(seq, .length)
        } else {
            seq.feed = [token]
            seq.decoding = true
        }
        return true
    }

    private func finishNormally(_ seq: Job, _ reason: FinishReason) {
        let rest = seq.text.finish()
        if !rest.isEmpty { seq.continuation.yield(.text(rest)) }
        let now = monotonicSeconds()
        end(seq, .finished(GenerationSummary(
            finishReason: reason, promptTokens: seq.job.prompt.count, cachedPromptTokens: seq.cachedPromptTokens,
            completionTokens: seq.generated, timeToFirstToken: seq.firstTokenTime.map { $0 - seq.submitted },
            totalSeconds: now - seq.submitted)))
    }

    /// Releases the sequence's slot (its cached tokens stay for reuse) and closes its stream,
    /// after `event` if given.
    private func end(_ seq: Job, _ event: GenerationEvent?) {
        guard !seq.done else { return }
        seq.done = true
        if active.contains(where: { $0 === seq }) {
            // Free the slot in the published count before the client sees the end, so a
            // request sent right after this one ends is not refused as over capacity.
            lock.lock()
            stats.active = max(0, stats.active - 1)
            lock.unlock()
        }
        if let event { seq.continuation.yield(event) }
        seq.continuation.finish()
        if let slot = seq.slot {
            // A prefill cut short leaves the tokens actually computed; they are still a valid prefix.
            slot.busy = false
            slot.lastUsed = clock
        }
        seq.slot = nil
    }
}

/// A queued or running job's stream of events; cancel it when the client goes away.
public final class GenerationHandle: Sendable {
    public let id: UInt64
    public let events: AsyncStream<GenerationEvent>
    private let scheduler: Scheduler

    init(id: UInt64, events: AsyncStream<GenerationEvent>, scheduler: Scheduler) {
        self.id = id
        self.events = events
        self.scheduler = scheduler
    }

    /// Stops the job at the next step boundary; its stream ends.
    public func cancel() { scheduler.cancel(id) }
}

/// One sequence cache of the pool and the tokens whose keys/values it holds.
private final class Slot {
    let cache: KVCache
    var tokens: [Int32] = []
    /// How many of `tokens` are the current (or last) job's prompt; the rest it generated.
    var promptTokens = 0
    var busy = false
    var lastUsed: UInt64 = 0
    init(cache: KVCache) { self.cache = cache }
}

/// A job in flight (loop-thread state, except `id`, `job` and the continuation).
private final class Job {
    let id: UInt64
    let job: GenerationJob
    let continuation: AsyncStream<GenerationEvent>.Continuation
    let submitted: Double
    let deadline: Double?
    var sampler: Sampler
    var text: TextStream
    var constraint: (any TokenConstraint)?
    var slot: Slot?
    /// Tokens to run next: the rest of the prompt, or the token sampled last.
    var feed: [Int32] = []
    var decoding = false
    var generated = 0
    var cachedPromptTokens = 0
    var firstTokenTime: Double?
    var done = false

    init(id: UInt64, job: GenerationJob, continuation: AsyncStream<GenerationEvent>.Continuation, tokenizer: Tokenizer) {
        self.id = id
        self.job = job
        self.continuation = continuation
        let start = monotonicSeconds()
        submitted = start
        deadline = job.timeout.map { start + $0 }
        sampler = Sampler(job.parameters.sampling)
        text = TextStream(tokenizer: tokenizer, stop: job.parameters.stop)
        constraint = job.constraint?()
    }
}

/// Monotonic seconds.
func monotonicSeconds() -> Double { now() }

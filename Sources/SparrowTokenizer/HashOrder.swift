/// The iteration order of llama.cpp's `std::unordered_map<std::string, llama_token>
/// token_to_id` under libstdc++ (GCC, i.e. Linux builds).
///
/// llama.cpp detects EOT, EOM and FIM tokens by walking that map and keeping the first
/// token whose text matches. When a vocabulary has several candidates (SmolLM2 has both
/// "<|endoftext|>" and "<|im_end|>") the result depends on the map's order, so we replay
/// libstdc++'s insertions and rehashes: `std::_Hash_bytes` (seed 0xc70f6907), prime bucket
/// counts, new buckets linked at the front of the node list. Builds with libc++ (macOS)
/// iterate differently; there llama.cpp itself may pick another token.
enum LibstdcxxMapOrder {
    /// Bucket counts of a default-constructed map: (element count that triggers the
    /// rehash, new bucket count), measured from libstdc++'s `_Prime_rehash_policy`.
    static let growth: [(Int, Int)] = [
        (1, 13), (14, 29), (30, 59), (60, 127), (128, 257), (258, 541), (542, 1109), (1110, 2357), (2358, 5087),
        (5088, 10273), (10274, 20753), (20754, 42043), (42044, 85229), (85230, 172933), (172934, 351061),
        (351062, 712697), (712698, 1447153), (1447154, 2938679),
    ]

    /// libstdc++'s `std::_Hash_bytes` for 64-bit `size_t`.
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>, seed: UInt64 = 0xc70f_6907) -> UInt64 {
        let mul: UInt64 = 0xc6a4_a793 << 32 &+ 0x5bd1_e995
        @inline(__always) func shiftMix(_ v: UInt64) -> UInt64 { v ^ (v >> 47) }
        let n = bytes.count
        var h = seed ^ (UInt64(n) &* mul)
        let aligned = n & ~7
        var p = 0
        let raw = UnsafeRawBufferPointer(bytes)
        while p < aligned {
            var data = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: p, as: UInt64.self))
            data = shiftMix(data &* mul) &* mul
            h ^= data
            h = h &* mul
            p += 8
        }
        if n & 7 != 0 {
            var data: UInt64 = 0
            for k in 0..<(n & 7) { data |= UInt64(bytes[aligned + k]) << (8 * UInt64(k)) }
            h ^= data
            h = h &* mul
        }
        h = shiftMix(h) &* mul
        return shiftMix(h)
    }

    /// Position of each token in the map's iteration order, for maps built by inserting
    /// `texts` in id order (`token_to_id[text] = id`). A duplicated text sits where it was
    /// first inserted but maps to its last id; the other ids get -1 (never visited). Nil for
    /// vocabularies too large for the measured growth table.
    static func positions(of texts: [String]) -> [Int32]? {
        let n = texts.count
        guard n < growth[growth.count - 1].0 else { return nil }
        var nodeOf = [Int32](repeating: -1, count: n)   // node (first id) holding each id's text
        var hashes = [UInt64](repeating: 0, count: n)
        var next = [Int32](repeating: -1, count: n + 1)  // index n is _M_before_begin
        let beforeBegin = Int32(n)
        var buckets: [Int32] = [-1]
        var bucketCount: UInt64 = 1
        var growthIndex = 0
        var count = 0

        var lastID = [Int32](repeating: -1, count: n)     // map value of each node
        for i in 0..<n {
            var text = texts[i]
            let h = text.withUTF8 { hash($0) }
            hashes[i] = h
            // Look the key up in its bucket first, as operator[] does.
            let b0 = Int(h % bucketCount)
            var existing: Int32 = -1
            if buckets[b0] >= 0 {
                var node = next[Int(buckets[b0])]
                while node >= 0 && Int(hashes[Int(node)] % bucketCount) == b0 {
                    if hashes[Int(node)] == h && texts[Int(node)].utf8.elementsEqual(text.utf8) {
                        existing = node
                        break
                    }
                    node = next[Int(node)]
                }
            }
            if existing >= 0 {  // existing key: value updated, node unchanged
                nodeOf[i] = existing
                lastID[Int(existing)] = Int32(i)
                continue
            }
            nodeOf[i] = Int32(i)
            lastID[i] = Int32(i)

            if growthIndex < growth.count && count + 1 == growth[growthIndex].0 {
                bucketCount = UInt64(growth[growthIndex].1)
                growthIndex += 1
                var newBuckets = [Int32](repeating: -1, count: Int(bucketCount))
                var p = next[n]
                next[n] = -1
                var beginBucket = 0
                while p >= 0 {
                    let q = next[Int(p)]
                    let b = Int(hashes[Int(p)] % bucketCount)
                    if newBuckets[b] < 0 {
                        next[Int(p)] = next[n]
                        next[n] = p
                        newBuckets[b] = beforeBegin
                        if next[Int(p)] >= 0 { newBuckets[beginBucket] = p }
                        beginBucket = b
                    } else {
                        let prev = Int(newBuckets[b])
                        next[Int(p)] = next[prev]
                        next[prev] = p
                    }
                    p = q
                }
                buckets = newBuckets
            }
            let b = Int(hashes[i] % bucketCount)
            if buckets[b] >= 0 {
                let prev = Int(buckets[b])
                next[i] = next[prev]
                next[prev] = Int32(i)
            } else {
                next[i] = next[n]
                next[n] = Int32(i)
                if next[i] >= 0 { buckets[Int(hashes[Int(next[i])] % bucketCount)] = Int32(i) }
                buckets[b] = beforeBegin
            }
            count += 1
        }

        var nodePosition = [Int32](repeating: -1, count: n)
        var p = next[n]
        var k: Int32 = 0
        while p >= 0 {
            nodePosition[Int(p)] = k
            k += 1
            p = next[Int(p)]
        }
        // Only the id the map holds for a text is ever seen while iterating.
        return (0..<n).map { lastID[Int(nodeOf[$0])] == Int32($0) ? nodePosition[Int(nodeOf[$0])] : -1 }
    }
}

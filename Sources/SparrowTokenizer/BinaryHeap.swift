/// Elements a `BinaryHeap` can order: `comesBefore` is true when `a` should pop before `b`.
protocol HeapOrdered {
    static func comesBefore(_ a: Self, _ b: Self) -> Bool
}

/// A binary heap over an array, reused between words (`removeAll` keeps capacity): the merge
/// queue of both BPE and SentencePiece (llama.cpp's `llm_bigram_*` priority queues).
struct BinaryHeap<Element: HeapOrdered> {
    private var items: [Element] = []

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ x: Element) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) >> 1
            if Element.comesBefore(items[i], items[p]) {
                items.swapAt(i, p)
                i = p
            } else {
                break
            }
        }
    }

    mutating func pop() -> Element? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && Element.comesBefore(items[l], items[m]) { m = l }
                if r < n && Element.comesBefore(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

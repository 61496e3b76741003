import FluxJobs
import FluxTraining

/// One finished sweep cell: what was evaluated and its accuracy on each manifest.
///
/// JSON keys are snake_case throughout, the cell's included (`sampled_tokens`, `is_standard`), so reports read the
/// same whichever tool wrote them.
public struct CellResult: Codable, Sendable, Equatable {
    /// The budget, sampling and cost of the cell.
    public var cell: SweepCell
    /// Accuracy on the reported manifest (`data.eval`).
    public var eval: CellMetrics
    /// Accuracy on the selection manifest (`data.choose_on`), when the sweep has one.
    public var chooseOn: CellMetrics?
    /// A fingerprint of the per-video scores on `data.eval` (`VideoScores.digest`): two runs of a sweep computed the
    /// same bits exactly when their digests agree (accuracies alone hide small differences).
    public var scoresDigest: String?

    /// A result.
    public init(cell: SweepCell, eval: CellMetrics, chooseOn: CellMetrics? = nil, scoresDigest: String? = nil) {
        self.cell = cell
        self.eval = eval
        self.chooseOn = chooseOn
        self.scoresDigest = scoresDigest
    }

    enum CodingKeys: String, CodingKey { case cell, eval, chooseOn = "choose_on", scoresDigest = "scores_digest" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        cell = try container.decode(CellCoding.self, forKey: .cell).cell
        eval = try container.decode(CellMetrics.self, forKey: .eval)
        chooseOn = try container.decodeIfPresent(CellMetrics.self, forKey: .chooseOn)
        scoresDigest = try container.decodeIfPresent(String.self, forKey: .scoresDigest)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(CellCoding(cell), forKey: .cell)
        try container.encode(eval, forKey: .eval)
        try container.encodeIfPresent(chooseOn, forKey: .chooseOn)
        try container.encodeIfPresent(scoresDigest, forKey: .scoresDigest)
    }
}

extension CellMetrics {
    /// Metrics from values already computed (a stored report, a test).
    public init(top1: Double, top5: Double, perClass: [Double?] = [], videos: Int, unreadable: Int = 0) {
        self.top1 = top1
        self.top5 = top5
        self.perClass = perClass
        self.videos = videos
        self.unreadable = unreadable
    }
}

/// `SweepCell` with snake_case keys: its own synthesized coding (in FluxJobs) uses the Swift names.
struct CellCoding: Codable {
    var cell: SweepCell

    init(_ cell: SweepCell) { self.cell = cell }

    enum CodingKeys: String, CodingKey {
        case index, budget, candidate, sampledTokens = "sampled_tokens", keptTokens = "kept_tokens", head, gmacs
        case isStandard = "is_standard"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cell = SweepCell(
            index: try c.decode(Int.self, forKey: .index), budget: try c.decode(Int.self, forKey: .budget),
            candidate: try c.decode(CandidateCoding.self, forKey: .candidate).candidate,
            sampledTokens: try c.decode(Int.self, forKey: .sampledTokens),
            keptTokens: try c.decode(Int.self, forKey: .keptTokens), head: try c.decode(Int.self, forKey: .head),
            gmacs: try c.decode(Double.self, forKey: .gmacs), isStandard: try c.decode(Bool.self, forKey: .isStandard))
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(cell.index, forKey: .index)
        try c.encode(cell.budget, forKey: .budget)
        try c.encode(CandidateCoding(cell.candidate), forKey: .candidate)
        try c.encode(cell.sampledTokens, forKey: .sampledTokens)
        try c.encode(cell.keptTokens, forKey: .keptTokens)
        try c.encode(cell.head, forKey: .head)
        try c.encode(cell.gmacs, forKey: .gmacs)
        try c.encode(cell.isStandard, forKey: .isStandard)
    }
}

/// A candidate with its `label` (`8×224`) written beside frames and size for readers of the JSON; the label is
/// derived, so decoding ignores it.
struct CandidateCoding: Codable {
    var candidate: SweepSpec.Candidate

    init(_ candidate: SweepSpec.Candidate) { self.candidate = candidate }

    enum CodingKeys: String, CodingKey { case frames, size, label }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        candidate = SweepSpec.Candidate(
            frames: try c.decode(Int.self, forKey: .frames), size: try c.decode(Int.self, forKey: .size))
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(candidate.frames, forKey: .frames)
        try c.encode(candidate.size, forKey: .size)
        try c.encode(candidate.label, forKey: .label)
    }
}

extension VideoScores {
    /// FNV-1a (64 bits) over the videos, labels and the probabilities' bit patterns, as 16 hex digits: equal scores
    /// give equal digests on any machine; any changed bit changes it with overwhelming likelihood.
    public var digest: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ value: UInt64) {
            for shift in stride(from: 0, to: 64, by: 8) {
                hash ^= (value >> UInt64(shift)) & 0xff
                hash = hash &* 0x0000_0100_0000_01b3
            }
        }
        for video in videos { mix(UInt64(bitPattern: Int64(video))) }
        for label in labels { mix(UInt64(bitPattern: Int64(label))) }
        for p in probabilities { mix(UInt64(p.bitPattern)) }
        return String(hash, radix: 16).leftPadded(to: 16)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

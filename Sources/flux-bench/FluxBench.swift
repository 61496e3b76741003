import ArgumentParser

/// `flux-bench`: speed figures for docs/benchmarks.md, run by `make bench` beside the anchors.
/// Never used by tests to assert a time.
@main
struct FluxBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flux-bench",
        abstract: "Measure Flux's compute core (median of repeated runs after warm-up).",
        subcommands: [
            ForwardBench.self, TrainStepBench.self, SGEMMBench.self, VideoBench.self, AllReduceBench.self,
            ZMQThroughputBench.self, RingMember.self, CoordinatorBench.self,
        ])
}

import ArgumentParser

/// `fluxctl`: what users type to run FluxViT and, as the cluster parts land, to drive jobs.
@main
struct FluxCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fluxctl",
        abstract: "Run FluxViT models and drive a Flux cluster.",
        discussion: "Start a local cluster with `fluxctl up --workers 2`, submit a job with `fluxctl submit configs/jobs/quickstart.yaml --wait`.",
        subcommands: [Up.self, Down.self, SubmitCommand.self, SweepCommand.self, Results.self, Jobs.self, Status.self,
                      Logs.self, Events.self, Cancel.self, Workers.self, Checkpoints.self, ChaosCommand.self, Plan.self, Explain.self,
                      Infer.self, Eval.self, Train.self, Dataset.self, Keys.self])
}

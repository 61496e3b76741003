import Foundation
import FluxTestKit
import Testing

extension SystemTests {
    /// `fluxctl plan`: a dry run that shows each world size's split and rejects what submit would reject.
    @Suite struct PlanCommandTests {
        @Test func plan_validSpec_showsEveryWorldSizeSplit() throws {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("plan-\(UUID().uuidString.prefix(6)).yaml")
            try SystemData.spec(name: "plan", steps: 12, min: 1, max: 3).write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            let result = try BuiltTool.run("fluxctl", ["plan", file.path])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("data: 40 clips; 5 steps an epoch of 8 clips; 12 steps (3 epochs)"), "\(result.stdout)")
            #expect(result.stdout.contains("first steps' Flux grids: step 0: 8×64² (128 tokens)"), "\(result.stdout)")
            for row in ["1        8 ", "2        4 4 ", "3        2 3 3 "] {
                #expect(result.stdout.contains(row), "no row '\(row)' in:\n\(result.stdout)")
            }
        }

        @Test func plan_invalidSpec_listsEveryIssueAndFails() throws {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("plan-\(UUID().uuidString.prefix(6)).yaml")
            try "name: x\ntrain: {global_batch: 0, steps: 3}\nworkers: {min: 3, max: 2}\n"
                .write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            let result = try BuiltTool.run("fluxctl", ["plan", file.path])
            #expect(result.status == 1)
            for field in ["model:", "data:", "train.global_batch:", "workers"] {
                #expect(result.stderr.contains(field), "no '\(field)' in:\n\(result.stderr)")
            }
        }
    }
}

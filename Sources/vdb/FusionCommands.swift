import ArgumentParser
import Foundation
import VectorDB

/// `vdb models fusion`: a collection's fitted hybrid fusion versions.
struct FusionList: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "fusion",
    abstract: "List a collection's hybrid fusion versions (`vdb train --tier fusion`).")
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @OptionGroup var output: OutputOptions

  func run() throws {
    let collection = try database.open(readOnly: true).collection(
      try target.name(), create: false)
    let history = try collection.fusionHistory()
    if output.isJSON { return try Terminal.printJSON(history) }
    Terminal.printTable(
      headers: ["version", "alpha", "state", "parent", "serves", "gate", "created"],
      rows: history.versions.map { version in
        let gate = version.lineage["reason"].flatMap { value -> String? in
          if case .string(let text) = value { return text }
          return nil
        }
        return [
          "f\(version.version)", String(format: "%.2f", version.alpha), version.state.rawValue,
          version.parent.map { "f\($0)" } ?? "default",
          history.serving?.version == version.version ? "yes" : "",
          gate ?? "", ISO8601DateFormatter().string(from: version.created),
        ]
      }, flexibleColumn: 5)
    if history.serving == nil { print("serving: the default fusion (convex, alpha 0.5)") }
  }

  /// `vdb models rollback --fusion`.
  static func rollback(_ collection: DocumentCollection, json: Bool) throws {
    let serving = try collection.rollbackFusion()
    if json { return try Terminal.printJSON(serving) }
    print(
      serving.map {
        "\(collection.name) rolled back to fusion f\($0.version)"
          + String(format: " (alpha %.2f)", $0.alpha)
      } ?? "\(collection.name) rolled back to the default fusion (alpha 0.5)")
  }
}

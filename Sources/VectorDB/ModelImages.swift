import Embedding
import Foundation

/// The model images of a database (Embedding's `ModelImage`): each stored encoder's
/// weights in the encoder's own layout, in `images/` inside the database directory, named
/// by the weights' SHA-256. A process that loads a model maps its image instead of copying
/// the weights out of LMDB (~40 ms of kernel page zeroing for 86 MB); processes loading the
/// same model share its pages.
///
/// Images are derived data, outside LMDB and its transactions: the first load of a model
/// writes one; a missing, damaged or outdated image is written again at the next load; a
/// read-only database loads without them. Deleting or pruning models removes the images
/// no stored model has; `vdb backup` copies none (the copy writes its own).
struct ModelImages {
  /// `images/` in the database directory.
  let directory: String
  /// False for a read-only database: its images are read, never written or removed.
  let writable: Bool

  init(database path: String, writable: Bool) {
    directory = (path as NSString).appendingPathComponent("images")
    self.writable = writable
  }

  /// Where the image of weights with SHA-256 `hash` (hex) lies, and its identity (the
  /// hash's first 64 bits, which the image's header must carry).
  func image(forWeightsHash hash: String) -> (path: String, identity: UInt64)? {
    guard hash.count == 64, let identity = UInt64(hash.prefix(16), radix: 16) else { return nil }
    return ((directory as NSString).appendingPathComponent(hash + ".image"), identity)
  }

  /// Writes `encoder`'s weights as `image` (from ``image(forWeightsHash:)``) when the
  /// directory exists or can be made (never through a symbolic link). Best effort: an
  /// image is an optimisation, so failing to write one (read-only media, a full disk) is
  /// not an error; the next load tries again.
  func write(_ encoder: SentenceEncoder, as image: (path: String, identity: UInt64)) {
    guard writable else { return }
    if mkdir(directory, 0o700) != 0 && errno != EEXIST { return }
    var status = stat()
    guard lstat(directory, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else { return }
    try? encoder.writeImage(to: image.path, identity: image.identity)
  }

  /// Removes every image whose weights no stored model has (`hashes` are those of the
  /// models kept), and temporary files a killed writer left. Best effort, as `write`.
  func sweep(keeping hashes: Set<String>) {
    guard writable, let names = try? FileManager.default.contentsOfDirectory(atPath: directory)
    else {
      return
    }
    let kept = Set(hashes.map { $0 + ".image" })
    for name in names where !kept.contains(name) {
      unlink((directory as NSString).appendingPathComponent(name))
    }
  }
}

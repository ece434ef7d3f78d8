import Foundation
import Tensor

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A reader and writer for the safetensors format: named tensors, no code, no pickle.
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON
/// `{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
/// "__metadata__": {"key": "value"}}`, then the data section the offsets point into
/// (relative to its start). Every entry is checked when the file is opened: a known
/// dtype, a non-negative shape, offsets inside the data section, a byte count equal to
/// shape × dtype size, and no two tensors overlapping. A truncated file therefore fails
/// at open, naming the first tensor that does not fit.
///
/// ```swift
/// let file = try SafeTensors(contentsOf: modelDirectory.appending(path: "model.safetensors"))
/// let w = try file.tensor("encoder.layer.0.attention.self.query.weight")  // Tensor [384, 384]
/// let bytes = SafeTensors.serialize(["w": w], metadata: ["format": "pt"])
/// let again = try SafeTensors(bytes: bytes)
/// ```
///
/// Files are memory-mapped: opening one reads only its header, and ``tensor(_:)`` copies
/// one tensor out. Values are read as little-endian, as the format prescribes.
/// A `SafeTensors` value is immutable and safe to share between threads.
public struct SafeTensors: Sendable {
  /// The element types the format defines.
  public enum DType: String, Sendable, CaseIterable {
    case bool = "BOOL"
    case u8 = "U8"
    case i8 = "I8"
    case f8e5m2 = "F8_E5M2"
    case f8e4m3 = "F8_E4M3"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Whether ``SafeTensors/tensor(_:)`` reads it as float32: F32 as it is, F16 and
    /// BF16 widened (exactly: every value of theirs is a float32 value).
    public var isReadAsFloat32: Bool { self == .f32 || self == .f16 || self == .bf16 }

    /// Whether the elements are floating-point numbers (weights, not ids or masks).
    var isFloatingPoint: Bool {
      isReadAsFloat32 || self == .f64 || self == .f8e5m2 || self == .f8e4m3
    }

    /// Bytes per element.
    public var byteSize: Int {
      switch self {
      case .bool, .u8, .i8, .f8e5m2, .f8e4m3: return 1
      case .i16, .u16, .f16, .bf16: return 2
      case .i32, .u32, .f32: return 4
      case .f64, .i64, .u64: return 8
      }
    }
  }

  /// One tensor's description from the header.
  public struct Entry: Equatable, Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range inside the data section.
    public let dataRange: Range<Int>
  }

  /// Where the bytes came from (a file path or a caller-given label), used in errors.
  public let source: String
  /// The tensors, by name.
  public let entries: [String: Entry]
  /// The free-form string map stored under `__metadata__`.
  public let metadata: [String: String]

  private let bytes: Bytes
  /// Whether a tensor's pages are dropped from resident memory once read (`withBytes`).
  private var releasesPages = false
  private let dataStart: Int

  /// The tensor names, sorted.
  public var names: [String] { entries.keys.sorted() }

  /// Memory-maps and validates the file at `url`.
  ///
  /// Throws ``EmbeddingError/missingFile(path:)`` when it does not exist,
  /// ``EmbeddingError/unreadableFile(path:reason:)`` when it cannot be mapped, and
  /// ``EmbeddingError/invalidSafeTensors(source:tensor:reason:)`` when it is malformed.
  public init(contentsOf url: URL) throws {
    let path = url.path
    try self.init(bytes: MappedFile(path: path), source: path)
  }

  /// Validates safetensors bytes held in memory (for example a model stored in a
  /// database). `source` names them in error messages.
  public init(bytes: [UInt8], source: String = "<memory>") throws {
    try self.init(bytes: OwnedBytes(bytes), source: source)
  }

  /// Validates safetensors bytes where they are, without copying them, and calls
  /// `body` with the file: for bytes valid only for a while, such as a model read from
  /// a database's memory map inside its transaction. The file must not outlive `body`
  /// (copy its tensors out: ``floatTensors()`` does). With `releasingPages`, for bytes
  /// of a read-only memory map only, each tensor's pages leave this process's resident
  /// memory once it has been read, so a model is not resident twice while it is copied.
  ///
  /// - Throws: ``EmbeddingError/invalidSafeTensors(source:tensor:reason:)`` when the
  ///   bytes are malformed; whatever `body` throws.
  public static func withBytes<R>(
    _ bytes: UnsafeRawBufferPointer, source: String, releasingPages: Bool = false,
    _ body: (SafeTensors) throws -> R
  ) throws -> R {
    var file = try SafeTensors(bytes: BorrowedBytes(buffer: bytes), source: source)
    file.releasesPages = releasingPages
    return try body(file)
  }

  private init(bytes: Bytes, source: String) throws {
    self.bytes = bytes
    self.source = source
    func invalid(_ reason: String, tensor: String? = nil) -> EmbeddingError {
      .invalidSafeTensors(source: source, tensor: tensor, reason: reason)
    }
    let buffer = bytes.buffer
    guard buffer.count >= 8 else {
      throw invalid("\(buffer.count) bytes is too short for the 8-byte header length (truncated?)")
    }
    var headerLength: UInt64 = 0
    for i in (0..<8).reversed() { headerLength = headerLength << 8 | UInt64(buffer[i]) }
    guard headerLength <= UInt64(buffer.count - 8) else {
      throw invalid(
        "header length \(headerLength) exceeds the \(buffer.count - 8) bytes that follow it"
          + " (truncated?)")
    }
    dataStart = 8 + Int(headerLength)
    let dataSize = buffer.count - dataStart
    let header: Header
    do {
      header = try JSONDecoder().decode(Header.self, from: Data(buffer[8..<dataStart]))
    } catch let error as DecodingError {
      let problem = JSONProblem(error, decoding: Header.self, from: Data(buffer[8..<dataStart]))
      throw invalid(Header.explain(problem), tensor: Header.tensorName(problem))
    }

    var entries: [String: Entry] = [:]
    // In name order, so that the error for a damaged file is always the same one.
    for (name, fields) in header.entries.sorted(by: { $0.0 < $1.0 }) {
      guard let dtype = DType(rawValue: fields.dtype) else {
        throw invalid("unknown dtype '\(fields.dtype)'", tensor: name)
      }
      let shape = fields.shape
      guard shape.allSatisfy({ $0 >= 0 }) else {
        throw invalid("shape \(shape) has a negative dimension", tensor: name)
      }
      let offsets = fields.dataOffsets
      guard offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1] else {
        throw invalid(
          "data_offsets \(offsets) is not [begin, end] with 0 ≤ begin ≤ end", tensor: name)
      }
      let (count, overflow) = shape.reduce((1, false)) { partial, dimension in
        let (product, overflow) = partial.0.multipliedReportingOverflow(by: dimension)
        return (product, partial.1 || overflow)
      }
      let (byteCount, byteOverflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
      guard !overflow, !byteOverflow else {
        throw invalid("shape \(shape) of \(fields.dtype) is too large to address", tensor: name)
      }
      guard offsets[1] - offsets[0] == byteCount else {
        throw invalid(
          "data_offsets \(offsets) hold \(offsets[1] - offsets[0]) bytes but shape \(shape)"
            + " of \(fields.dtype) needs \(byteCount)", tensor: name)
      }
      guard offsets[1] <= dataSize else {
        throw invalid(
          "data ends at byte \(offsets[1]) of a data section of \(dataSize) bytes"
            + " (file truncated?)", tensor: name)
      }
      entries[name] = Entry(
        name: name, dtype: dtype, shape: shape, dataRange: offsets[0]..<offsets[1])
    }
    let ordered = entries.values.filter { !$0.dataRange.isEmpty }
      .sorted { $0.dataRange.lowerBound < $1.dataRange.lowerBound }
    for (previous, next) in zip(ordered, ordered.dropFirst())
    where next.dataRange.lowerBound < previous.dataRange.upperBound {
      throw invalid("data overlaps tensor '\(previous.name)'", tensor: next.name)
    }
    self.entries = entries
    self.metadata = header.metadata
  }

  /// The tensor called `name` as float32, copied out of the file (F16 and BF16 widened:
  /// models are often published in them).
  ///
  /// Throws ``EmbeddingError/missingTensor(source:tensor:)`` or, for a dtype other than
  /// F32, F16 and BF16, ``EmbeddingError/unsupportedDType(source:tensor:dtype:)``.
  public func tensor(_ name: String) throws -> Tensor {
    guard let entry = entries[name] else {
      throw EmbeddingError.missingTensor(source: source, tensor: name)
    }
    guard entry.dtype.isReadAsFloat32 else {
      throw EmbeddingError.unsupportedDType(
        source: source, tensor: name, dtype: entry.dtype.rawValue)
    }
    let count = entry.dataRange.count / entry.dtype.byteSize
    let start = dataStart + entry.dataRange.lowerBound
    let raw = UnsafeRawBufferPointer(rebasing: bytes.buffer[start..<start + entry.dataRange.count])
    let values = [Float](unsafeUninitializedCapacity: count) { destination, initialized in
      func half(_ i: Int) -> UInt16 {
        UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
      }
      switch entry.dtype {
      case .f16:
        for i in 0..<count { destination[i] = Float(Float16(bitPattern: half(i))) }
      case .bf16:
        // bfloat16 is the high half of a float32.
        for i in 0..<count { destination[i] = Float(bitPattern: UInt32(half(i)) << 16) }
      default:
        #if _endian(little)
          UnsafeMutableRawBufferPointer(destination).copyMemory(from: raw)
        #else
          for i in 0..<count {
            destination[i] = Float(
              bitPattern: UInt32(
                littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
          }
        #endif
      }
      initialized = count
    }
    return Tensor(shape: entry.shape, values: values)
  }

  /// Every tensor read as float32 (F32, F16, BF16), by name; tensors of other dtypes
  /// (such as BERT's integer `embeddings.position_ids`) are skipped.
  public func floatTensors() throws -> [String: Tensor] {
    var result: [String: Tensor] = [:]
    for entry in entries.values where entry.dtype.isReadAsFloat32 {
      result[entry.name] = try tensor(entry.name)
    }
    return result
  }

  /// The safetensors bytes for `tensors` (all F32), names sorted, data packed in that
  /// order, the header padded with spaces to a multiple of 8 bytes so that the data
  /// section is aligned.
  public static func serialize(_ tensors: [String: Tensor], metadata: [String: String] = [:])
    -> [UInt8]
  {
    let names = tensors.keys.sorted()
    var fields: [String] = []
    if !metadata.isEmpty {
      let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
      fields.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
    }
    var offset = 0
    for name in names {
      let tensor = tensors[name]!
      let size = tensor.values.count * 4
      let shape = tensor.shape.map(String.init).joined(separator: ",")
      fields.append(
        "\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],"
          + "\"data_offsets\":[\(offset),\(offset + size)]}")
      offset += size
    }
    var header = Array("{\(fields.joined(separator: ","))}".utf8)
    while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }

    var result: [UInt8] = []
    result.reserveCapacity(8 + header.count + offset)
    var length = UInt64(header.count).littleEndian
    withUnsafeBytes(of: &length) { result.append(contentsOf: $0) }
    result.append(contentsOf: header)
    for name in names {
      for value in tensors[name]!.values {
        var bits = value.bitPattern.littleEndian
        withUnsafeBytes(of: &bits) { result.append(contentsOf: $0) }
      }
    }
    return result
  }

  /// `text` as a JSON string literal, quotes included.
  private static func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case _ where scalar.value < 0x20:
        out +=
          "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
          + String(scalar.value, radix: 16)
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }
}

/// Bytes that stay valid for the lifetime of the object.
private protocol Bytes: Sendable {
  var buffer: UnsafeRawBufferPointer { get }
}

/// Bytes owned elsewhere, valid while `SafeTensors.withBytes` runs.
private struct BorrowedBytes: Bytes, @unchecked Sendable {
  let buffer: UnsafeRawBufferPointer
}

private final class OwnedBytes: Bytes, @unchecked Sendable {
  let buffer: UnsafeRawBufferPointer

  init(_ bytes: [UInt8]) {
    let storage = UnsafeMutableRawBufferPointer.allocate(
      byteCount: max(bytes.count, 1), alignment: 16)
    bytes.withUnsafeBytes { storage.copyMemory(from: $0) }
    buffer = UnsafeRawBufferPointer(start: storage.baseAddress, count: bytes.count)
  }

  deinit { buffer.baseAddress.map { UnsafeMutableRawPointer(mutating: $0).deallocate() } }
}

/// The JSON header: tensor entries plus the optional `__metadata__` string map.
private struct Header: Decodable {
  struct Fields: Decodable {
    let dtype: String
    let shape: [Int]
    let dataOffsets: [Int]

    enum CodingKeys: String, CodingKey {
      case dtype, shape
      case dataOffsets = "data_offsets"
    }
  }

  struct Key: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
  }

  var entries: [(String, Fields)] = []
  var metadata: [String: String] = [:]

  init(from decoder: Decoder) throws {
    let container = try decoder.container(keyedBy: Key.self)
    for key in container.allKeys {
      if key.stringValue == "__metadata__" {
        metadata = try container.decode([String: String].self, forKey: key)
      } else {
        entries.append((key.stringValue, try container.decode(Fields.self, forKey: key)))
      }
    }
  }

  /// The tensor a header problem is about: the first key of its path, unless that is
  /// `__metadata__`.
  static func tensorName(_ problem: JSONProblem) -> String? {
    problem.path.first.flatMap { $0 == "__metadata__" ? nil : $0 }
  }

  /// A one-line reason for a header problem, naming the field below the tensor (or
  /// below `__metadata__`) and the JSON type it must be.
  static func explain(_ problem: JSONProblem) -> String {
    let inTensor = tensorName(problem) != nil
    let field = problem.path.dropFirst(inTensor ? 1 : 0).joined(separator: ".")
    // The whole entry of a tensor, or the whole header.
    let whole = inTensor ? "entry" : "header"
    switch problem.kind {
    case .missing: return "missing field '\(field)'"
    case .wrongType(let expected) where field.isEmpty: return "\(whole) must be \(expected)"
    case .wrongType(let expected): return "field '\(field)' must be \(expected)"
    case .null(let expected) where field.isEmpty: return "\(whole) is null; it must be \(expected)"
    case .null(let expected): return "field '\(field)' is null; it must be \(expected)"
    case .unfit(let value):
      return "field '\(field)': \(value) is out of range or not a whole number"
    case .invalid(let detail) where problem.path.isEmpty:
      return "header is not valid JSON" + (detail.map { " at \($0)" } ?? "")
    case .invalid(let detail): return "field '\(field)': \(detail ?? "invalid value")"
    case .unplaced: return "a value in the header does not fit its field"
    }
  }
}

/// A read-only memory mapping of a whole file.
private final class MappedFile: Bytes, @unchecked Sendable {
  let buffer: UnsafeRawBufferPointer

  init(path: String) throws {
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else {
      let code = errno
      if code == ENOENT { throw EmbeddingError.missingFile(path: path) }
      throw EmbeddingError.unreadableFile(path: path, reason: String(cString: strerror(code)))
    }
    defer { close(descriptor) }
    var status = stat()
    guard fstat(descriptor, &status) == 0 else {
      throw EmbeddingError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
    }
    // A directory opens, but cannot be mapped ("No such device" would not say why).
    guard status.st_mode & S_IFMT != S_IFDIR else {
      throw EmbeddingError.unreadableFile(path: path, reason: "it is a directory, not a file")
    }
    let size = Int(status.st_size)
    if size == 0 {
      buffer = UnsafeRawBufferPointer(start: nil, count: 0)
      return
    }
    guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0),
      address != MAP_FAILED
    else {
      throw EmbeddingError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
    }
    buffer = UnsafeRawBufferPointer(start: address, count: size)
  }

  deinit {
    if let base = buffer.baseAddress {
      munmap(UnsafeMutableRawPointer(mutating: base), buffer.count)
    }
  }
}

extension SafeTensors: WeightSource {
  /// The floating-point tensors (an F64 one among them is refused when it is read, rather
  /// than seen as missing).
  var tensorNames: [String] { entries.values.filter { $0.dtype.isFloatingPoint }.map(\.name) }

  /// Calls `body` with the shape and values of tensor `name` where they lie in the bytes
  /// (F32; copied first when they are not 4-byte aligned, or on a big-endian machine; F16
  /// and BF16 widened into a copy); nil when there is no floating-point tensor `name`.
  ///
  /// - Throws: ``EmbeddingError/unsupportedDType(source:tensor:dtype:)`` for F64 and F8.
  func withTensor<R>(
    _ name: String, _ body: (_ shape: [Int], _ values: UnsafeBufferPointer<Float>) throws -> R
  ) throws -> R? {
    guard let entry = entries[name], entry.dtype.isFloatingPoint else { return nil }
    guard entry.dtype == .f32 else {
      return try tensor(name).values.withUnsafeBufferPointer { try body(entry.shape, $0) }
    }
    let start = dataStart + entry.dataRange.lowerBound
    let raw = UnsafeRawBufferPointer(rebasing: bytes.buffer[start..<start + entry.dataRange.count])
    defer { if releasesPages { MappedPages.release(raw) } }
    #if _endian(little)
      if let base = raw.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
        return try body(
          entry.shape,
          UnsafeBufferPointer(start: base.assumingMemoryBound(to: Float.self), count: raw.count / 4)
        )
      }
    #endif
    return try tensor(name).values.withUnsafeBufferPointer { try body(entry.shape, $0) }
  }
}

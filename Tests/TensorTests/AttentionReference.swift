import Foundation

/// One head of attention by its definition, in Double: context = softmax(q·(k/√d)ᵀ)·v, for
/// `length` tokens whose q, k and v are `qkv` rows `stride` floats apart (at columns 0,
/// d and 2d). A kernel that rounds its operands is checked by passing its rounding as
/// `round`, applied where it rounds: to q, k/√d, the softmax's P and v. Row i is token
/// i's context.
func referenceAttention(
  _ qkv: [Float], length: Int, headSize d: Int, stride: Int,
  round: (Float) -> Double = { Double($0) }
) -> [[Double]] {
  let scale = 1 / Float(d).squareRoot()
  return (0..<length).map { i in
    let scores = (0..<length).map { t in
      (0..<d).reduce(0.0) {
        $0 + round(qkv[i * stride + $1]) * round(scale * qkv[t * stride + d + $1])
      }
    }
    let largest = scores.max()!
    let exponentials = scores.map { exp($0 - largest) }
    let total = exponentials.reduce(0, +)
    let p = exponentials.map { round(Float($0 / total)) }
    return (0..<d).map { j in
      (0..<length).reduce(0.0) { $0 + p[$1] * round(qkv[$1 * stride + 2 * d + j]) }
    }
  }
}

#!/usr/bin/env bash
# libFuzzer targets for vdb's input parsers, each run for a bounded time.
#
#   Fuzz/run.sh [SECONDS] [TARGET...]     # default 20 s each; targets: Fuzz/targets/*.swift
#
# Each target compiles the parser's own sources with `swiftc -sanitize=fuzzer,address`
# (coverage-guided, memory errors and traps are crashes) and links the modules they
# import (LMDB, TextSearch, Crypto, Tensor; JSON is compiled with them) from the release test build (`tools/test.sh` makes it). Targets: the
# VectorDB readers (jsonl csv filter npy fvecs qrels) and the model files the Embedding
# module reads (safetensors config tokenizer). Seeds are Fuzz/corpus/TARGET/; new inputs
# found go to a scratch copy, not the repository. A crash leaves its input as
# Fuzz/crashes/TARGET-crash-*; make it a regression test.
#
# A nightly-style run: Fuzz/run.sh 3600.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(jsonl csv filter npy fvecs qrels safetensors config tokenizer)

bin=.build-tests/x86_64-unknown-linux-gnu/release
[ -d "$bin/LMDB.build" ] || {
  echo "no release test build: run tools/test.sh (or its swift build line) first" >&2
  exit 2
}
# The parsers and what they need from their module (nothing that opens a database or
# builds a model), by the module the target tests.
vectordb=(VectorDBError JSONValue Document JSONLines CSVDocuments TextFile InputFile VectorFile Filter BEIR)
vectordb=("${vectordb[@]/#/Sources/VectorDB/}")
embedding=(EmbeddingError BertConfig SafeTensors WeightSource BertUnicode WordPieceTokenizer)
# MappedPages is `package` in Tensor, which a module outside the package cannot see: the
# fuzz target compiles its own copy (with a package name, so `package` means something).
embedding=("${embedding[@]/#/Sources/Embedding/}" Sources/Tensor/MappedPages)
work=Fuzz/.build
mkdir -p "$work/modules" Fuzz/crashes
# JSON, the one JSON reader both modules' sources import, is compiled here with the same
# instrumentation as they are (and found before the release build's copy).
swiftc -sanitize=fuzzer,address -parse-as-library -O -wmo -module-name JSON \
  -package-name vdb_fuzz -emit-module -emit-module-path "$work/modules/JSON.swiftmodule" \
  -c Sources/JSON/*.swift -o "$work/JSON.o"
# Modules the sources import, and the objects that implement them.
flags=(-I "$work/modules" -I "$bin/Modules" -Xcc -fmodule-map-file=Sources/CLMDB/module.modulemap
  -Xcc -fmodule-map-file=Sources/CStemmer/module.modulemap
  -Xcc -fmodule-map-file=Sources/CBLAS/module.modulemap)
for map in $(find "$bin" -maxdepth 2 -name module.modulemap \( -path '*CCrypto*' -o -path '*CKernels*' -o -path '*CPrefetch*' \)); do
  flags+=(-Xcc "-fmodule-map-file=$map")
done
flags+=(-Xcc -I -Xcc Sources/CKernels/include -Xcc -I -Xcc Sources/CPrefetch/include)
for include in $(find .build-tests/checkouts/swift-crypto/Sources -maxdepth 2 -type d -name include); do
  flags+=(-Xcc -I -Xcc "$include")
done
objects=$(find "$bin"/{LMDB,TextSearch,Tensor,CKernels,CPrefetch,Crypto,CryptoBoringWrapper,CCryptoBoringSSL,CCryptoBoringSSLShims}.build \
  -name '*.o' 2>/dev/null)
objects+=" $work/JSON.o"
status=0
for target in "${targets[@]}"; do
  echo "== fuzz $target (${seconds} s)" >&2
  case $target in
    safetensors | config | tokenizer) sources=("${embedding[@]/%/.swift}") ;;
    *) sources=("${vectordb[@]/%/.swift}") ;;
  esac
  # shellcheck disable=SC2086
  swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name "Fuzz_$target" \
    -package-name vdb_fuzz \
    "${flags[@]}" "${sources[@]}" "Fuzz/targets/$target.swift" $objects \
    -llmdb -lstemmer -lopenblas \
    -o "$work/$target" 2> >(grep -v 'Cannot export local symbol' >&2)
  rm -rf "$work/$target.corpus"
  cp -r "Fuzz/corpus/$target" "$work/$target.corpus"
  if ! "$work/$target" "$work/$target.corpus" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -max_len=4096 -artifact_prefix="Fuzz/crashes/$target-" -print_final_stats=1 \
    2>"$work/$target.log"; then
    status=1
    tail -40 "$work/$target.log" >&2
  fi
  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$work/$target.log" | sed "s/^/  /" >&2
done
exit $status
